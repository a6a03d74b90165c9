//! A bounded load generator for the sample app (and anything else that answers
//! `GET` over HTTP/1.1): a few threads on loopback, each sending one request per
//! connection, as fast as answers come, until told to stop or until its time is up.
//!
//! It counts answers with status 200 and everything else (a refused or reset
//! connection, a timeout, another status) as failed, remembers the body of each
//! answer (the sample app's `/version` says which release answered), and the longest
//! time without any successful answer. It is how the zero-downtime tests and
//! `bench/zero-downtime.sh` see what users see during a switch.

pub mod load;
