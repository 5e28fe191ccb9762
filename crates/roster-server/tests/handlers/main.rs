//! Handlers tested in-process: the router built on a fresh SQLite file and
//! called with `oneshot`, without a server process or a socket. Suites that
//! need a process (crashes, several processes, the job workers' timing) stay
//! spawned-server suites.

mod documented;
mod input;
mod support;
