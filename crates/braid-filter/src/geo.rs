//! Geo predicates on `{lon, lat}` points, in degrees.

use crate::ast::{GeoBoundingBox, GeoPoint, GeoPolygon, GeoRadius};

/// The IUGG mean Earth radius in metres, the sphere haversine distances are taken on.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Great-circle distance in metres (haversine formula).
pub fn haversine_m(a: GeoPoint, b: GeoPoint) -> f64 {
    let (lat1, lat2) = (a.lat.to_radians(), b.lat.to_radians());
    let dlat = lat2 - lat1;
    let dlon = (b.lon - a.lon).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

impl GeoRadius {
    /// Strictly closer than `radius` metres to the centre.
    pub fn contains(&self, p: GeoPoint) -> bool {
        haversine_m(self.center, p) < self.radius
    }
}

impl GeoBoundingBox {
    /// Strictly inside the box: a point on an edge is outside, as on Qdrant's server.
    /// When `top_left.lon > bottom_right.lon` the box crosses the antimeridian and
    /// covers `lon > left` or `lon < right`.
    pub fn contains(&self, p: GeoPoint) -> bool {
        let lat_ok = p.lat < self.top_left.lat && p.lat > self.bottom_right.lat;
        let (left, right) = (self.top_left.lon, self.bottom_right.lon);
        let lon_ok = if left > right { p.lon > left || p.lon < right } else { p.lon > left && p.lon < right };
        lat_ok && lon_ok
    }
}

/// Even-odd ray casting on the plane of (lon, lat); a point exactly on an edge may fall
/// either way.
fn ring_contains(ring: &[GeoPoint], p: GeoPoint) -> bool {
    let mut inside = false;
    for edge in ring.windows(2) {
        let (a, b) = (edge[0], edge[1]);
        if (a.lat > p.lat) != (b.lat > p.lat) {
            let lon_at = a.lon + (p.lat - a.lat) / (b.lat - a.lat) * (b.lon - a.lon);
            if p.lon < lon_at {
                inside = !inside;
            }
        }
    }
    inside
}

impl GeoPolygon {
    /// Inside the exterior ring and outside every interior ring.
    pub fn contains(&self, p: GeoPoint) -> bool {
        ring_contains(&self.exterior, p) && !self.interiors.iter().any(|hole| ring_contains(hole, p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(lon: f64, lat: f64) -> GeoPoint {
        GeoPoint { lon, lat }
    }

    #[test]
    fn haversine_by_hand() {
        // One degree of latitude is R·π/180 metres.
        let d = haversine_m(pt(13.0, 52.0), pt(13.0, 53.0));
        assert!((d - EARTH_RADIUS_M * std::f64::consts::PI / 180.0).abs() < 1e-6);
        // Berlin to Paris is about 878 km.
        let d = haversine_m(pt(13.4050, 52.5200), pt(2.3522, 48.8566));
        assert!((d - 877_500.0).abs() < 2_000.0, "{d}");
    }

    #[test]
    fn bounding_box_across_the_antimeridian() {
        let b = GeoBoundingBox { top_left: pt(170.0, 10.0), bottom_right: pt(-170.0, -10.0) };
        assert!(b.contains(pt(175.0, 0.0)));
        assert!(b.contains(pt(-175.0, 0.0)));
        assert!(!b.contains(pt(0.0, 0.0)));
        assert!(!b.contains(pt(175.0, 20.0)));
    }

    #[test]
    fn bounding_box_edges_are_outside() {
        let b = GeoBoundingBox { top_left: pt(0.0, 10.0), bottom_right: pt(10.0, 0.0) };
        assert!(b.contains(pt(5.0, 5.0)));
        for edge in [pt(0.0, 5.0), pt(10.0, 5.0), pt(5.0, 0.0), pt(5.0, 10.0), pt(0.0, 10.0)] {
            assert!(!b.contains(edge), "{edge:?}");
        }
        let across = GeoBoundingBox { top_left: pt(170.0, 10.0), bottom_right: pt(-170.0, -10.0) };
        assert!(!across.contains(pt(170.0, 0.0)) && !across.contains(pt(-170.0, 0.0)));
    }

    #[test]
    fn polygon_with_a_hole() {
        let square = |lo: f64, hi: f64| vec![pt(lo, lo), pt(hi, lo), pt(hi, hi), pt(lo, hi), pt(lo, lo)];
        let p = GeoPolygon { exterior: square(0.0, 10.0), interiors: vec![square(4.0, 6.0)] };
        assert!(p.contains(pt(1.0, 1.0)));
        assert!(!p.contains(pt(5.0, 5.0)));
        assert!(!p.contains(pt(11.0, 5.0)));
    }
}
