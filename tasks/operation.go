package tasks

import (
	"fmt"
	"strings"
)

// Operation is one of the WhatsApp provider operations sendworker performs.
// Every operation is an external send (the contact sees it), so every one
// needs approval.
type Operation string

// The five operations of the product contract (docs/PRODUCT.md).
const (
	OpSendMessage Operation = "chats_messages_send" // reply into an existing chat
	OpCreateChat  Operation = "chats_create"        // start a chat with a known attendee
	OpReaction    Operation = "messages_reaction"   // react to a message
	OpEdit        Operation = "messages_edit"       // edit one of our messages
	OpDelete      Operation = "messages_delete"     // delete one of our messages for everyone
)

// Operations lists every operation in a stable order.
var Operations = []Operation{OpSendMessage, OpCreateChat, OpReaction, OpEdit, OpDelete}

// TaskTypePrefix starts every asynq task type of sendworker.
const TaskTypePrefix = "whatsapp:"

// Valid reports whether o is one of the five operations.
func (o Operation) Valid() bool {
	for _, known := range Operations {
		if o == known {
			return true
		}
	}
	return false
}

// TaskType is the asynq task type, "whatsapp:<operation>".
func (o Operation) TaskType() string { return TaskTypePrefix + string(o) }

// ParseTaskType returns the operation of an asynq task type.
func ParseTaskType(taskType string) (Operation, error) {
	op := Operation(strings.TrimPrefix(taskType, TaskTypePrefix))
	if !strings.HasPrefix(taskType, TaskTypePrefix) || !op.Valid() {
		return "", fmt.Errorf("tasks: unknown task type %q", taskType)
	}
	return op, nil
}

// SendsNewMessage reports whether the operation puts a new message in front of
// the contact (as opposed to acting on an existing one).
func (o Operation) SendsNewMessage() bool { return o == OpSendMessage || o == OpCreateChat }
