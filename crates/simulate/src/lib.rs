//! Handoff's traffic simulator. Simulated people with desktops and phones (a realistic
//! mix of Windows, macOS and Linux desktops, iPhones and Android phones, Chrome, Safari,
//! Edge and Firefox) sign up and sign in through the real HTTP API of a running server,
//! signing with a software authenticator, recording the events its pages would record, and
//! following whatever flow the server decides. Each attempt's outcome is drawn from
//! published per-segment figures and planted on purpose, and written down as ground truth,
//! so the server's diagnosis can be scored against it (`handoff simulate --score`, the
//! accuracy test and benchmark) and a fresh instance can be filled for a demo.
//!
//! Parts: [`population`] (devices, behaviour tables), [`people`] (sign-up), [`journeys`]
//! (one attempt per flow), [`browser`] (HTTP, cookies, clocks, event batches), [`truth`]
//! (ground truth and scoring), [`run`] (rate, progress, the whole run).

pub mod browser;
pub mod journeys;
pub mod people;
pub mod population;
pub mod run;
pub mod softkey;
pub mod truth;

pub use browser::{SimError, Target};
pub use run::{Options, Report, score, simulate};
pub use softkey::SoftKey;
pub use truth::{Score, Truth};
