//! Places from a MaxMind DB file (GeoLite2/GeoIP2 City or Country, or any database in
//! their layout, such as DB-IP's), for QR approval's "who is asking" and far-apart check.
//! The file is read into memory once at start; a lookup is a walk of its search tree.

use std::net::IpAddr;
use std::path::Path;

use handoff_core::geo::{Locator, Place};
use maxminddb::{Reader, geoip2};

/// A GeoIP database loaded from a file.
pub struct MaxMindLocator {
    reader: Reader<Vec<u8>>,
}

impl std::fmt::Debug for MaxMindLocator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaxMindLocator").field("database_type", &self.reader.metadata().database_type).finish()
    }
}

impl MaxMindLocator {
    /// Opens `path`; the error names the file and what is wrong with it.
    pub fn open(path: &Path) -> Result<Self, String> {
        let reader = Reader::open_readfile(path)
            .map_err(|e| format!("cannot read the GeoIP database {}: {e}", path.display()))?;
        Ok(Self { reader })
    }

    /// The database's type as it names itself (`GeoLite2-City`, …).
    pub fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    /// When the database was built (Unix seconds).
    pub fn build_epoch(&self) -> u64 {
        self.reader.metadata().build_epoch
    }
}

impl Locator for MaxMindLocator {
    fn locate(&self, ip: IpAddr) -> Option<Place> {
        let found = match self.reader.lookup(ip) {
            Ok(found) => found,
            Err(e) => {
                tracing::debug!(%ip, error = %e, "GeoIP lookup failed");
                return None;
            }
        };
        let record = match found.decode::<geoip2::City<'_>>() {
            Ok(Some(record)) => record,
            Ok(None) => return None,
            Err(e) => {
                tracing::debug!(%ip, error = %e, "GeoIP record does not decode");
                return None;
            }
        };
        let owned = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_owned);
        let place = Place {
            city: owned(record.city.names.english),
            region: owned(record.subdivisions.first().and_then(|s| s.names.english)),
            country: owned(record.country.names.english),
            country_code: owned(record.country.iso_code),
            coordinates: record.location.latitude.zip(record.location.longitude),
            accuracy_km: record.location.accuracy_radius.map(u32::from),
        };
        (place != Place::default()).then_some(place)
    }
}
