#![no_std]
// Present so rst-user can name this crate as a build-dependency (aya-build).
