// Package tasks is the send contract of sendworker: the send request the
// Sequencer submits for each of the five WhatsApp operations, its validation
// (every bad field named), its canonical form and digest (what an approver
// signs off), the asynq task types, payload, ids and default queue, send windows,
// and the states and reason codes of a
// send's lifecycle shared by the approval stage, the worker and the admin API.
//
// It is a leaf package: it does no I/O and imports nothing of sendworker, so
// every other package can depend on it without cycles.
package tasks
