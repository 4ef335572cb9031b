// Package docs holds no code: it is the home of the checks of the repository's documentation
// (../README.md, the Markdown files of docs/ and deploy/), in docs_test.go.
//
// The documentation must stand on its own: every file it links to or names exists in the
// repository, every #anchor it links to is a heading of its target, and it never points at
// inputs that live outside the repository (product notes, issue numbers, work-session steps).
//
// This package must never be imported.
package docs
