//! Input newtypes: raw strings from the edge become these once, after which the rest of
//! the code can trust them ("parse, don't validate"). Each has its tests beside it.

mod identifier;
mod ids;
mod token;

pub use identifier::{DisplayName, Identifier};
pub use ids::{CeremonyId, CredentialId, JourneyId, UserId};
pub use token::SecretToken;
