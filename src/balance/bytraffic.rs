//! bytraffic: the member with the lowest `transferred/lf + read/lf` wins (each term an integer
//! division, lf = loadfactor x 100, byte counters cumulative); ties go to the earlier offered
//! member (httpd's strict `<`).

use super::{Balancer, Candidates, LbMethod, PickCache};

/// httpd `lbmethod=bytraffic`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ByTraffic;

impl LbMethod for ByTraffic {
    fn name(&self) -> &'static str {
        "bytraffic"
    }
    fn pick(
        &self,
        bal: &Balancer,
        candidates: Candidates,
        _cache: &mut PickCache,
    ) -> Option<usize> {
        let mut best: Option<(usize, u64)> = None;
        for i in candidates.iter() {
            let m = &bal.members()[i];
            let lf = u64::from(m.lf());
            let score = m.transferred() / lf + m.read() / lf;
            if best.is_none_or(|(_, s)| score < s) {
                best = Some((i, score));
            }
        }
        best.map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use crate::balance::testutil::*;
    use crate::balance::{Balancer, PickCache};
    use crate::conf::model::LbMethodKind;

    #[test]
    fn httpd_worked_example() {
        let b = Balancer::new(lfs(LbMethodKind::ByTraffic, &[1, 2, 3]));
        let mut cache = PickCache::new();
        let got: Vec<usize> = (0..12)
            .map(|_| {
                let p = b.pick(None, 0, 0, &mut cache).unwrap();
                p.add_traffic(198, 349);
                p.index()
            })
            .collect();
        // a b c b c c a b c c b c
        assert_eq!(got, vec![0, 1, 2, 1, 2, 2, 0, 1, 2, 2, 1, 2]);
        for (m, lf) in b.members().iter().zip([100, 200, 300]) {
            assert_eq!(m.transferred() / lf + m.read() / lf, 9);
        }
    }
}
