//! See the module's parent.
