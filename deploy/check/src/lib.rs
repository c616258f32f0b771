//! Checks of the deployment files in `deploy/` against the workspace and the binaries they run;
//! everything is in `tests/`.
