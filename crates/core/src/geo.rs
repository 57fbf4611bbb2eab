//! Where a device's address is, roughly, and how far apart a desktop and a phone are.
//! QR approval shows the phone the place of the computer that asks and flags a computer far
//! from the phone (PRODUCT.md §2.3), because a far-away requester is the signature of QR
//! login hijacking. Places come from an operator's GeoIP database through [`Locator`]
//! (the server reads MaxMind files); without one, or for addresses it does not know, the
//! coarser network rule applies, and every verdict says which basis it used.

use std::fmt::Debug;
use std::net::IpAddr;

use serde::Serialize;

/// An approximate place, as a GeoIP database knows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Place {
    /// City name.
    pub city: Option<String>,
    /// First subdivision (state, region).
    pub region: Option<String>,
    /// Country name.
    pub country: Option<String>,
    /// ISO 3166-1 alpha-2 code.
    pub country_code: Option<String>,
    /// Latitude and longitude in degrees.
    pub coordinates: Option<(f64, f64)>,
    /// How far off the coordinates may be, in kilometres.
    pub accuracy_km: Option<u32>,
}

impl Place {
    /// "London, England, United Kingdom": the parts the database had, or `None`.
    pub fn label(&self) -> Option<String> {
        let mut parts: Vec<&str> = Vec::new();
        for part in [&self.city, &self.region, &self.country].into_iter().flatten() {
            if !part.is_empty() && !parts.contains(&part.as_str()) {
                parts.push(part);
            }
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

/// Looks addresses up in a GeoIP database.
pub trait Locator: Send + Sync + Debug {
    /// The place of `ip`, when the database knows it.
    fn locate(&self, ip: IpAddr) -> Option<Place>;
}

/// A computer and a phone this far apart (beyond the databases' own uncertainty) are
/// flagged: farther than a commute, nearer than any other city pair that matters here.
pub const FAR_KM: f64 = 500.0;

/// Great-circle distance in kilometres (haversine, mean Earth radius).
pub fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (lat1, lon1) = (a.0.to_radians(), a.1.to_radians());
    let (lat2, lon2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((lat2 - lat1) / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * ((lon2 - lon1) / 2.0).sin().powi(2);
    2.0 * 6371.0088 * h.sqrt().min(1.0).asin()
}

/// What the far-apart verdict was based on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Basis {
    /// Both places had coordinates.
    Location,
    /// Both places had a country, not coordinates.
    Country,
    /// No usable places: the addresses' networks were compared.
    Network,
    /// An address is missing or unreadable: nothing to compare.
    Unknown,
}

/// How far apart two devices seem.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Separation {
    /// Flag it to the user and record it (a place or country says so; networks alone never
    /// do, see `different_networks`).
    pub far_apart: bool,
    /// The addresses are on clearly different networks. A weaker signal, recorded but not
    /// shown: a phone on mobile data and a computer on Wi-Fi side by side differ too, and
    /// a warning on nearly every approval would teach people to ignore it.
    pub different_networks: bool,
    /// Distance between the two places, when both had coordinates.
    pub distance_km: Option<u32>,
    /// What the verdict rests on.
    pub basis: Basis,
}

/// One side of the comparison: its address and, when a database knew it, its place.
#[derive(Debug, Clone, Copy)]
pub struct Whereabouts<'a> {
    /// The address as the server saw it.
    pub ip: Option<&'a str>,
    /// Its place.
    pub place: Option<&'a Place>,
}

/// Compares two devices: by distance when both places have coordinates (far beyond
/// [`FAR_KM`] plus both accuracy radii), else by country. Without places, different
/// networks are only noted (`different_networks`), never called far apart.
pub fn separation(a: Whereabouts<'_>, b: Whereabouts<'_>) -> Separation {
    let (pa, pb) = (a.place, b.place);
    if let (Some((ca, ra)), Some((cb, rb))) = (
        pa.and_then(|p| p.coordinates.map(|c| (c, p.accuracy_km))),
        pb.and_then(|p| p.coordinates.map(|c| (c, p.accuracy_km))),
    ) {
        let km = distance_km(ca, cb);
        let slack = f64::from(ra.unwrap_or(0)) + f64::from(rb.unwrap_or(0));
        // Rounded for display; distances are far below u32::MAX.
        let rounded = km.round().clamp(0.0, 40_075.0) as u32;
        return Separation {
            far_apart: km > FAR_KM + slack,
            different_networks: far_apart_networks(a.ip, b.ip).unwrap_or(false),
            distance_km: Some(rounded),
            basis: Basis::Location,
        };
    }
    if let (Some(x), Some(y)) = (pa.and_then(|p| p.country_code.as_deref()), pb.and_then(|p| p.country_code.as_deref()))
    {
        return Separation {
            far_apart: !x.eq_ignore_ascii_case(y),
            different_networks: far_apart_networks(a.ip, b.ip).unwrap_or(false),
            distance_km: None,
            basis: Basis::Country,
        };
    }
    match far_apart_networks(a.ip, b.ip) {
        Some(different) => {
            Separation { far_apart: false, different_networks: different, distance_km: None, basis: Basis::Network }
        }
        None => Separation { far_apart: false, different_networks: false, distance_km: None, basis: Basis::Unknown },
    }
}

/// Whether two addresses are on clearly different networks (different IPv4 /16 or IPv6
/// /48); loopback and private addresses count as one network. `None` when an address is
/// missing or unreadable. Coarse: a phone on mobile data and a computer on home Wi-Fi
/// differ, which is why a place, when known, takes precedence.
pub fn far_apart_networks(a: Option<&str>, b: Option<&str>) -> Option<bool> {
    let (Some(Ok(a)), Some(Ok(b))) = (a.map(str::parse::<IpAddr>), b.map(str::parse::<IpAddr>)) else { return None };
    let local = |ip: &IpAddr| match ip {
        IpAddr::V4(v) => v.is_loopback() || v.is_private() || v.is_link_local(),
        IpAddr::V6(v) => v.is_loopback() || (v.segments()[0] & 0xfe00) == 0xfc00,
    };
    if local(&a) && local(&b) {
        return Some(false);
    }
    Some(match (a, b) {
        (IpAddr::V4(x), IpAddr::V4(y)) => x.octets()[..2] != y.octets()[..2],
        (IpAddr::V6(x), IpAddr::V6(y)) => x.segments()[..3] != y.segments()[..3],
        _ => true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(lat: f64, lon: f64, accuracy: u32, country: &str) -> Place {
        Place {
            coordinates: Some((lat, lon)),
            accuracy_km: Some(accuracy),
            country_code: Some(country.into()),
            ..Place::default()
        }
    }

    fn both<'a>(ip_a: &'a str, a: Option<&'a Place>, ip_b: &'a str, b: Option<&'a Place>) -> Separation {
        separation(Whereabouts { ip: Some(ip_a), place: a }, Whereabouts { ip: Some(ip_b), place: b })
    }

    #[test]
    fn distances_match_known_city_pairs() {
        let london = (51.5074, -0.1278);
        let paris = (48.8566, 2.3522);
        let sydney = (-33.8688, 151.2093);
        assert!((distance_km(london, paris) - 344.0).abs() < 5.0, "{}", distance_km(london, paris));
        assert!((distance_km(london, sydney) - 16_990.0).abs() < 50.0, "{}", distance_km(london, sydney));
        assert!(distance_km(london, london) < 1e-6);
    }

    #[test]
    fn a_place_decides_before_the_network() {
        let london = at(51.5, -0.12, 20, "GB");
        let reading = at(51.45, -0.97, 20, "GB");
        let sydney = at(-33.87, 151.2, 20, "AU");
        // Different /16 networks but the same area (mobile data vs home Wi-Fi): not flagged.
        let near = both("81.2.69.1", Some(&london), "203.0.113.9", Some(&reading));
        assert_eq!((near.far_apart, near.basis), (false, Basis::Location));
        assert!(near.distance_km.is_some_and(|d| (50..70).contains(&d)), "{near:?}");
        // Same /16 but the database puts them on two continents: flagged.
        let far = both("81.2.69.1", Some(&london), "81.2.70.9", Some(&sydney));
        assert_eq!((far.far_apart, far.basis), (true, Basis::Location));
    }

    #[test]
    fn coarse_accuracy_widens_the_margin() {
        // Country-level records (accuracy 1,000 km) 700 km apart are not evidence.
        let a = at(52.0, 5.0, 1000, "NL");
        let b = at(46.0, 10.0, 1000, "IT");
        assert!(!both("1.1.1.1", Some(&a), "2.2.2.2", Some(&b)).far_apart);
        let precise_a = at(52.0, 5.0, 10, "NL");
        let precise_b = at(46.0, 10.0, 10, "IT");
        assert!(both("1.1.1.1", Some(&precise_a), "2.2.2.2", Some(&precise_b)).far_apart);
    }

    #[test]
    fn countries_then_networks_when_places_lack_coordinates() {
        let gb = Place { country_code: Some("GB".into()), ..Place::default() };
        let au = Place { country_code: Some("au".into()), ..Place::default() };
        let s = both("81.2.69.1", Some(&gb), "81.2.69.2", Some(&au));
        assert_eq!((s.far_apart, s.basis), (true, Basis::Country));
        let s = both("81.2.69.1", Some(&gb), "203.0.113.9", Some(&gb));
        assert_eq!((s.far_apart, s.basis), (false, Basis::Country));
        let s = both("81.2.69.1", Some(&gb), "203.0.113.9", None);
        assert_eq!((s.far_apart, s.different_networks, s.basis), (false, true, Basis::Network));
        let s = separation(Whereabouts { ip: None, place: None }, Whereabouts { ip: Some("1.2.3.4"), place: None });
        assert_eq!((s.far_apart, s.basis), (false, Basis::Unknown));
    }

    #[test]
    fn networks_far_apart() {
        assert_eq!(far_apart_networks(Some("127.0.0.1"), Some("127.0.0.1")), Some(false));
        assert_eq!(far_apart_networks(Some("192.168.1.5"), Some("10.0.0.3")), Some(false));
        assert_eq!(far_apart_networks(Some("81.2.69.1"), Some("81.2.70.9")), Some(false));
        assert_eq!(far_apart_networks(Some("81.2.69.1"), Some("203.0.113.9")), Some(true));
        assert_eq!(far_apart_networks(Some("2001:db8:1::1"), Some("2001:db8:2::1")), Some(true));
        assert_eq!(far_apart_networks(None, Some("203.0.113.9")), None);
        assert_eq!(far_apart_networks(Some("not an ip"), Some("203.0.113.9")), None);
    }

    #[test]
    fn labels_skip_missing_and_repeated_parts() {
        let p = Place { city: Some("Singapore".into()), country: Some("Singapore".into()), ..Place::default() };
        assert_eq!(p.label().as_deref(), Some("Singapore"));
        let p = Place {
            city: Some("London".into()),
            region: Some("England".into()),
            country: Some("United Kingdom".into()),
            ..Place::default()
        };
        assert_eq!(p.label().as_deref(), Some("London, England, United Kingdom"));
        assert_eq!(Place::default().label(), None);
    }
}
