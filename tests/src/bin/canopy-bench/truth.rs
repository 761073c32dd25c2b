//! State truth under repetition (issue 15): the core scenario (prompt → a tool that runs
//! for seconds → permission → approve from Canopy → idle) many times over in four
//! sessions of each real CLI at once, against the loopback mock model server. Every
//! round must end `idle` with exactly the expected states in between.

use canopy_tests::realcli;

use crate::{Figure, Samples, Target};

pub fn figures(rounds: usize) -> Vec<Figure> {
    let sessions = 4;
    let tool_secs = 2;
    let mut out = Vec::new();
    for (agent, setup) in realcli::CLIS {
        if !realcli::should_run(agent) {
            continue;
        }
        let soak = realcli::soak(agent, setup, sessions, rounds, tool_secs);
        for e in &soak.examples {
            eprintln!("truth: {e}");
        }
        let method = format!(
            "{} rounds ({sessions} sessions × {rounds}) of prompt → {tool_secs} s tool → \
             permission → approve → idle against the real {agent} and the mock model",
            soak.rounds
        );
        out.push(Figure::new(
            format!("truth: {agent} rounds not ending idle"),
            soak.wrong_final as f64,
            "rounds",
            Target::Zero("every round ends idle"),
            method.clone(),
        ));
        out.push(Figure::new(
            format!("truth: {agent} spurious states"),
            soak.spurious as f64,
            "states",
            Target::Zero("no state outside the expected sequence"),
            method.clone(),
        ));
        if !soak.approve_lag.is_empty() {
            let lag = Samples::new(soak.approve_lag);
            out.push(Figure::new(
                format!("truth: {agent} approve → tool at a subscriber p95"),
                lag.p(0.95),
                "ms",
                Target::Below(50.0),
                format!("{method}; median {:.0} ms over {}", lag.median(), lag.len()),
            ));
        }
    }
    out
}
