//! Where the time of starting nodes goes: each node's phases (waiting for an engine slot, create,
//! attach, start, ready) and the one summary line `up` logs of them.

use std::time::Duration;

/// The phases of starting one node, in order.
pub const PHASES: [&str; 5] = ["slot wait", "create", "attach", "start", "ready"];

/// One node's time in each of [`PHASES`] (zero for a phase it skipped, e.g. create for a restart).
pub type NodeTimes = [Duration; PHASES.len()];

/// "starting 3 nodes took 1.20 s; per node, median / max: slot wait 0 ms / 0 ms, create 80 ms / 95 ms, …",
/// or `None` for no nodes.
pub fn summary(total: Duration, nodes: &[NodeTimes]) -> Option<String> {
    if nodes.is_empty() {
        return None;
    }
    let phases: Vec<String> = (0..PHASES.len())
        .map(|p| {
            let mut column: Vec<Duration> = nodes.iter().map(|t| t[p]).collect();
            column.sort();
            format!(
                "{} {} / {}",
                PHASES[p],
                millis(column[(column.len() - 1) / 2]),
                millis(column[column.len() - 1])
            )
        })
        .collect();
    Some(format!(
        "starting {} nodes took {:.2} s; per node, median / max: {}",
        nodes.len(),
        total.as_secs_f64(),
        phases.join(", ")
    ))
}

fn millis(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: [u64; 5]) -> NodeTimes {
        v.map(Duration::from_millis)
    }

    #[test]
    fn summary_gives_median_and_max_per_phase() {
        let nodes = [
            ms([0, 80, 40, 300, 900]),
            ms([10, 90, 50, 310, 700]),
            ms([500, 100, 60, 320, 800]),
        ];
        assert_eq!(
            summary(Duration::from_millis(2500), &nodes).unwrap(),
            "starting 3 nodes took 2.50 s; per node, median / max: slot wait 10 ms / 500 ms, \
             create 90 ms / 100 ms, attach 50 ms / 60 ms, start 310 ms / 320 ms, ready 800 ms / 900 ms"
        );
    }

    #[test]
    fn even_count_takes_the_lower_median_and_none_for_no_nodes() {
        let nodes = [ms([1, 1, 1, 1, 1]), ms([3, 3, 3, 3, 3])];
        assert!(summary(Duration::ZERO, &nodes)
            .unwrap()
            .contains("slot wait 1 ms / 3 ms"));
        assert_eq!(summary(Duration::ZERO, &[]), None);
    }
}
