// Package imports holds the test of the package map of docs/DESIGN.md: which of sendworker's
// packages may import which. It has no code: the rules live in its test, which fails when a
// forbidden import appears.
package imports
