//! Writes the test GeoIP database (`handoff_tests::geoip`) to the path given, for the
//! Chromium tests: `cargo run -p handoff-tests --example geoip-fixture -- PATH`.

fn main() {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: geoip-fixture PATH (where to write the .mmdb file)");
        std::process::exit(2);
    };
    let written = handoff_tests::geoip::city_database(std::path::Path::new(&path));
    println!("{}", written.display());
}
