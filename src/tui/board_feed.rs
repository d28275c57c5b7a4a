//! A probe's result ([`PingResult`], read only) turned into what the board shows of it. The
//! only file of the board that knows the probe layer's types.

use super::board::Probe;
use crate::probe::{PingResult, Status};

/// The board's view of a finished probe; None for one interrupted by a signal (not counted,
/// as ping does not count it).
pub fn probe_of(r: &PingResult) -> Option<Probe> {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    Some(match &r.status {
        // The echo's time, or the handshake's when no echo was asked for (as the statistics
        // take it); a reply always has one of them.
        Status::Reply => Probe::Reply(r.rtt.or(r.connect).map_or(0.0, ms)),
        Status::Lost => Probe::Lost,
        Status::Timeout => Probe::Timeout,
        Status::Refused => Probe::Refused,
        Status::Icmp(rep) => Probe::Icmp {
            reason: rep.describe().reason,
            router: rep.from,
        },
        Status::Error(e) => Probe::Error(e.clone()),
        Status::Interrupted => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn results_become_board_states() {
        let mut r = PingResult::new(1, Status::Reply);
        r.connect = Some(Duration::from_millis(2));
        assert_eq!(probe_of(&r), Some(Probe::Reply(2.0)));
        r.rtt = Some(Duration::from_micros(1500));
        assert_eq!(probe_of(&r), Some(Probe::Reply(1.5)));
        let of = |s| probe_of(&PingResult::new(1, s));
        assert_eq!(of(Status::Lost), Some(Probe::Lost));
        assert_eq!(of(Status::Timeout), Some(Probe::Timeout));
        assert_eq!(of(Status::Refused), Some(Probe::Refused));
        assert_eq!(of(Status::Interrupted), None);
        assert_eq!(
            of(Status::Error("x".into())),
            Some(Probe::Error("x".into()))
        );
    }
}
