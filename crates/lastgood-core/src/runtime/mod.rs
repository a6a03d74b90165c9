//! How code is switched. Only the `releases` runtime (release directories and an
//! atomic `current` symlink) exists so far; compose, swarm, command and gitops will
//! sit beside it as modules of their own.

pub mod releases;
