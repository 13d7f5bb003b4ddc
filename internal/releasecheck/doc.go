// Package releasecheck holds `make release-check`: it builds the three
// client artefacts (Python wheel and sdist, npm tarball, Go module), installs
// each into a fresh place outside the repository, and runs its README quick
// start against a real gateway and PostgreSQL. The test is behind the
// releasecheck build tag because it installs packages with pip and npm.
package releasecheck
