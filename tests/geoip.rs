//! A GeoIP database for tests, in MaxMind's City layout and types, written with the
//! `mmdb-writer` crate so that the server's real reader (`maxminddb`) reads it. The
//! integration tests and the Chromium tests (through the `geoip-fixture` example) use it.

use std::path::{Path, PathBuf};

/// Writes a GeoIP database in MaxMind's City layout to `path`: London (81.2.69.0/24) and
/// Reading (5.64.0.0/16), 60 km apart on different networks, and Sydney (1.128.0.0/16).
pub fn city_database(path: &Path) -> PathBuf {
    use std::collections::BTreeMap;
    // MaxMind's types: names are maps of language to string, the radius a uint16.
    #[derive(serde::Serialize)]
    struct Named {
        names: BTreeMap<&'static str, &'static str>,
    }
    #[derive(serde::Serialize)]
    struct Country {
        iso_code: &'static str,
        names: BTreeMap<&'static str, &'static str>,
    }
    #[derive(serde::Serialize)]
    struct Location {
        latitude: f64,
        longitude: f64,
        accuracy_radius: u16,
    }
    #[derive(serde::Serialize)]
    struct City {
        city: Named,
        subdivisions: Vec<Named>,
        country: Country,
        location: Location,
    }
    let en = |name: &'static str| BTreeMap::from([("en", name)]);
    let city = |name, region, country, iso_code, latitude, longitude| City {
        city: Named { names: en(name) },
        subdivisions: vec![Named { names: en(region) }],
        country: Country { iso_code, names: en(country) },
        location: Location { latitude, longitude, accuracy_radius: 20 },
    };
    let mut writer = mmdb_writer::Writer::new("GeoIP2-City");
    let rows = [
        ("81.2.69.0/24", city("London", "England", "United Kingdom", "GB", 51.5142, -0.0931)),
        ("5.64.0.0/16", city("Reading", "England", "United Kingdom", "GB", 51.4542, -0.9731)),
        ("1.128.0.0/16", city("Sydney", "New South Wales", "Australia", "AU", -33.8688, 151.2093)),
    ];
    for (net, record) in rows {
        writer.insert(net.parse::<ipnet::IpNet>().unwrap(), &record).unwrap();
    }
    std::fs::write(path, writer.to_bytes().unwrap()).unwrap();
    path.to_path_buf()
}
