//! Linearizability checker: Wing & Gong's search with Lowe's just-in-time linearization and
//! memoization of (linearized set, model state) pairs, as in Porcupine/Knossos.
//!
//! The history of one key is a list of [`LinOp`]s: each has a call time and, if it completed
//! with certainty, a return time. An operation with an unknown outcome (`info`) has no return:
//! it may take effect at any point after its call, or never. The search walks the
//! calls and returns in time order; at each call it may linearize the operation (if the model
//! accepts it with the observed output), and on reaching the return of an operation not yet
//! linearized it backtracks. The history is linearizable when every operation that returned
//! has been linearized. Independent keys are checked separately (P-compositionality), which
//! keeps each search small; a step budget turns a search that is still too large into
//! [`LinResult::Unknown`] rather than an endless run.

use std::collections::HashSet;
use std::fmt::Debug;
use std::hash::Hash;

/// A sequential specification.
pub trait Model {
    /// Model state (hashed for memoization).
    type State: Clone + Eq + Hash + Debug;
    /// Operation argument.
    type Input: Debug;
    /// Operation result.
    type Output: Debug;

    /// The initial state.
    fn init(&self) -> Self::State;

    /// The state after `input` if it may be applied in `state` and yield `output`
    /// (`None`: the outcome is unknown and only the effect matters); `None` if it may not.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;
}

/// One operation of a single-key history.
#[derive(Debug, Clone)]
pub struct LinOp<I, O> {
    /// Caller-side identifier (e.g. the history index of the invoke), for reports.
    pub id: u64,
    /// When it was invoked.
    pub call_ns: u64,
    /// When it returned with certainty; `None` for an unknown outcome.
    pub return_ns: Option<u64>,
    /// The argument.
    pub input: I,
    /// The observed result; `None` for an unknown outcome.
    pub output: Option<O>,
}

/// The outcome of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinResult {
    /// A linearization exists.
    Linearizable,
    /// None exists.
    Violation {
        /// Ids of the longest linearizable prefix the search found, in linearization order.
        longest_prefix: Vec<u64>,
        /// The operation that returned before it could be linearized after that prefix.
        stuck_op: Option<u64>,
    },
    /// The step budget ran out first.
    Unknown {
        /// Steps taken.
        steps: u64,
    },
}

const NIL: usize = usize::MAX;

/// Doubly linked list of call/return entries with O(1) unlink and relink.
struct Entries {
    /// Operation index of each entry.
    op: Vec<usize>,
    /// True for a return entry.
    is_return: Vec<bool>,
    next: Vec<usize>,
    prev: Vec<usize>,
    /// Entry index of each operation's call and return.
    call_of: Vec<usize>,
    return_of: Vec<usize>,
    /// The sentinel in front of the first entry.
    head: usize,
}

impl Entries {
    fn new<I, O>(ops: &[LinOp<I, O>]) -> Entries {
        // (time, 0 = call / 1 = return, op): at equal times calls come first, so the two
        // operations count as concurrent (the lenient reading).
        let mut order: Vec<(u64, u8, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            order.push((op.call_ns, 0, i));
            if let Some(r) = op.return_ns {
                order.push((r.max(op.call_ns), 1, i));
            }
        }
        order.sort_unstable();
        let n = order.len();
        let mut e = Entries {
            op: Vec::with_capacity(n + 1),
            is_return: Vec::with_capacity(n + 1),
            next: Vec::with_capacity(n + 1),
            prev: Vec::with_capacity(n + 1),
            call_of: vec![NIL; ops.len()],
            return_of: vec![NIL; ops.len()],
            head: n,
        };
        for (k, &(_, kind, i)) in order.iter().enumerate() {
            e.op.push(i);
            e.is_return.push(kind == 1);
            e.next.push(if k + 1 < n { k + 1 } else { NIL });
            e.prev.push(if k == 0 { n } else { k - 1 });
            if kind == 1 {
                e.return_of[i] = k;
            } else {
                e.call_of[i] = k;
            }
        }
        e.op.push(NIL);
        e.is_return.push(false);
        e.next.push(if n > 0 { 0 } else { NIL });
        e.prev.push(NIL);
        e
    }

    fn unlink(&mut self, k: usize) {
        let (p, n) = (self.prev[k], self.next[k]);
        self.next[p] = n;
        if n != NIL {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, k: usize) {
        let (p, n) = (self.prev[k], self.next[k]);
        self.next[p] = k;
        if n != NIL {
            self.prev[n] = k;
        }
    }

    /// Removes operation `i` (its call and return) from the list.
    fn lift(&mut self, i: usize) {
        self.unlink(self.call_of[i]);
        if self.return_of[i] != NIL {
            self.unlink(self.return_of[i]);
        }
    }

    /// Undoes [`lift`](Self::lift); must be called in reverse order of lifting.
    fn unlift(&mut self, i: usize) {
        if self.return_of[i] != NIL {
            self.relink(self.return_of[i]);
        }
        self.relink(self.call_of[i]);
    }
}

/// A fixed-size bit set.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

/// Checks one key's history against `model`, taking at most `steps_max` search steps.
pub fn check<M: Model>(model: &M, ops: &[LinOp<M::Input, M::Output>], steps_max: u64) -> LinResult {
    let mut entries = Entries::new(ops);
    let mut returns_left = ops.iter().filter(|o| o.return_ns.is_some()).count();
    let mut state = model.init();
    let mut linearized = Bits::new(ops.len());
    let mut cache: HashSet<(Bits, M::State)> = HashSet::new();
    // (operation, state before it)
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut longest: Vec<u64> = Vec::new();
    let mut stuck: Option<u64> = None;
    let mut steps: u64 = 0;
    let mut cursor = entries.next[entries.head];

    loop {
        if returns_left == 0 {
            return LinResult::Linearizable;
        }
        steps += 1;
        if steps > steps_max {
            return LinResult::Unknown { steps };
        }
        if cursor == NIL {
            // Unreachable: the cursor never passes a return entry, and one is left.
            break;
        }
        let i = entries.op[cursor];
        if !entries.is_return[cursor] {
            if let Some(next_state) = model.step(&state, &ops[i].input, ops[i].output.as_ref()) {
                let mut next_set = linearized.clone();
                next_set.set(i);
                if cache.insert((next_set.clone(), next_state.clone())) {
                    stack.push((i, std::mem::replace(&mut state, next_state)));
                    linearized = next_set;
                    entries.lift(i);
                    if entries.return_of[i] != NIL {
                        returns_left -= 1;
                    }
                    if stack.len() > longest.len() {
                        longest = stack.iter().map(|(j, _)| ops[*j].id).collect();
                        stuck = None;
                    }
                    cursor = entries.next[entries.head];
                    continue;
                }
            }
            cursor = entries.next[cursor];
        } else {
            // The return of an operation that is not linearized yet: this prefix is a dead end.
            if stack.len() == longest.len() && stuck.is_none() {
                stuck = Some(ops[i].id);
            }
            let Some((j, prior)) = stack.pop() else {
                break;
            };
            state = prior;
            linearized.clear(j);
            entries.unlift(j);
            if entries.return_of[j] != NIL {
                returns_left += 1;
            }
            cursor = entries.next[entries.call_of[j]];
        }
    }
    LinResult::Violation {
        longest_prefix: longest,
        stuck_op: stuck,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A register of integers with read, write and compare-and-set.
    struct Reg;

    #[derive(Debug)]
    enum In {
        R,
        W(u8),
        Cas(u8, u8),
    }

    impl Model for Reg {
        type State = u8;
        type Input = In;
        type Output = Option<u8>;
        fn init(&self) -> u8 {
            0
        }
        fn step(&self, s: &u8, i: &In, o: Option<&Option<u8>>) -> Option<u8> {
            match (i, o) {
                (In::R, Some(Some(v))) => (v == s).then_some(*s),
                (In::R, _) => Some(*s),
                (In::W(v), _) => Some(*v),
                (In::Cas(e, v), _) => (e == s).then_some(*v),
            }
        }
    }

    fn op(
        id: u64,
        call: u64,
        ret: Option<u64>,
        input: In,
        out: Option<u8>,
    ) -> LinOp<In, Option<u8>> {
        LinOp {
            id,
            call_ns: call,
            return_ns: ret,
            input,
            output: ret.map(|_| out),
        }
    }

    #[test]
    fn accepts_concurrent_write_and_read() {
        let ops = vec![
            op(0, 0, Some(10), In::W(1), None),
            op(1, 1, Some(5), In::R, Some(1)),
            op(2, 2, Some(6), In::R, Some(0)),
        ];
        assert_eq!(check(&Reg, &ops, 1_000), LinResult::Linearizable);
    }

    #[test]
    fn rejects_stale_read() {
        let ops = vec![
            op(0, 0, Some(1), In::W(1), None),
            op(1, 2, Some(3), In::R, Some(0)),
        ];
        match check(&Reg, &ops, 1_000) {
            LinResult::Violation {
                longest_prefix,
                stuck_op,
            } => {
                assert_eq!(longest_prefix, vec![0]);
                assert_eq!(stuck_op, Some(1));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rejects_non_monotonic_reads() {
        // w1 || r->1 then r->0 (both after w1 started, second after first returned).
        let ops = vec![
            op(0, 0, Some(100), In::W(1), None),
            op(1, 1, Some(2), In::R, Some(1)),
            op(2, 3, Some(4), In::R, Some(0)),
        ];
        assert!(matches!(
            check(&Reg, &ops, 1_000),
            LinResult::Violation { .. }
        ));
    }

    #[test]
    fn unknown_outcomes_may_or_may_not_happen() {
        // An info write that later shows up, and one that never does.
        let ops = vec![
            op(0, 0, None, In::W(5), None),
            op(1, 1, None, In::W(6), None),
            op(2, 10, Some(11), In::R, Some(5)),
            op(3, 12, Some(13), In::Cas(5, 7), None),
            op(4, 14, Some(15), In::R, Some(7)),
        ];
        assert_eq!(check(&Reg, &ops, 10_000), LinResult::Linearizable);
        // But a value can't come back after being overwritten by a completed CAS.
        let mut bad = ops;
        bad.push(op(5, 16, Some(17), In::R, Some(5)));
        assert!(matches!(
            check(&Reg, &bad, 10_000),
            LinResult::Violation { .. }
        ));
    }

    #[test]
    fn budget_gives_unknown() {
        let ops: Vec<_> = (0..40)
            .map(|i| op(i, 0, Some(1000), In::W((i % 7) as u8), None))
            .chain(std::iter::once(op(99, 2000, Some(2001), In::R, Some(200))))
            .collect();
        assert!(matches!(check(&Reg, &ops, 500), LinResult::Unknown { .. }));
    }
}
