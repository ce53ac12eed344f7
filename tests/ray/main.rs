//! The Ray tier: the pool's workers as actors of a real Ray cluster that
//! the tier starts itself (a head and one more node on this machine, from
//! `tests/ray/cluster.py`) and stops when the tests end, however they end.
//! It needs `target/ray-venv` (`just ray-venv`, which `just test-ray` and
//! `just test` run first); without it every test fails saying so.
//! Run it alone with `just test-ray`.

#[path = "../support/mod.rs"]
mod support;

mod cluster;
mod faults;
mod pool;
