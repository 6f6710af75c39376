//! Counters of one run, summed over many.

macro_rules! stats {
    (sum { $($s:ident),* $(,)? } max { $($m:ident),* $(,)? }) => {
        #[derive(Clone, Debug, Default)]
        pub struct Stats {
            $(pub $s: u64,)*
            $(pub $m: u64,)*
        }
        impl Stats {
            pub fn merge(&mut self, o: &Stats) {
                $(self.$s += o.$s;)*
                $(self.$m = self.$m.max(o.$m);)*
            }
            pub fn fields(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($s), self.$s),)* $((stringify!($m), self.$m),)*]
            }
        }
    };
}

stats! {
    sum {
        runs, runs_beyond, runs_chaos, virtual_ms, events, polls,
        // requests sent by kind
        req_put, req_update, req_get, req_delete, req_transact,
        // faults injected
        f_req_drop, f_resp_drop, f_dup, f_long_delay, f_throttle, f_5xx_before, f_5xx_after,
        f_conn_error, f_malformed_after, f_conflict, f_timeouts, f_pauses, f_suspends, f_check_pauses, f_deaths,
        f_ttl_deletes, f_res_long, f_outages, f_outage_hits, late_responses,
        // lock outcomes
        acq_create, acq_steal, takeovers, acquired, busy, gave_up,
        cuts_acquire, handles_dropped, abandoned, orphan_checks, late_landings, items_left,
        rel_released, rel_gone, rel_not_owner, rel_already_lost, rel_unconfirmed,
        loss_stolen, loss_deleted, loss_expired,
        // resource / fencing
                work_writes, stale_landed, stale_accepted, fence_rejected,
        guarded_writes, guarded_accepted,
        fence_regressions, fence_regressions_late_create, fence_regressions_undocumented, fence_misorder_after_regression,
        // liveness
        live_windows, live_checked, live_met,
        // violations (in-bounds: every kind fails the test)
        v_exclusion, v_stale_write, v_liveness, v_storm, v_spin, v_model, v_fence, v_bound,
        v_orphan, v_leak, v_other,
        // beyond-bounds runs: expected breakage, counted only
        beyond_exclusion, beyond_stale_write,
    }
    max {
        max_req_per_client_sec, live_max_permille,
    }
}

impl Stats {
    pub fn violations(&self) -> u64 {
        self.v_exclusion
            + self.v_stale_write
            + self.v_liveness
            + self.v_storm
            + self.v_spin
            + self.v_model
            + self.v_fence
            + self.v_bound
            + self.v_orphan
            + self.v_leak
            + self.v_other
    }
}
