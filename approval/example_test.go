package approval_test

import (
	"context"
	"fmt"
	"os"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/approval"
	"github.com/sendworker/sendworker/internal/redisproc"
	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/tasks"
)

// The life of a send through the gate: the Sequencer enqueues it (again, as
// it retries: same record), an approver who is not the requester approves the
// digest they were shown, and the releaser hands it to asynq once.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "example-")
	defer os.RemoveAll(dir)
	proc, err := redisproc.Start(ctx, redisproc.Options{Dir: dir})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = proc.Kill() }()
	rdb := redis.NewClient(&redis.Options{Addr: proc.Addr()})
	defer rdb.Close()
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: proc.Addr()})
	defer client.Close()

	svc := approval.New(ledger.New(rdb, ledger.Options{}), client, approval.Options{Queue: "sends"})
	req := tasks.SendRequest{
		SendID: "seq-42:step-3:contact-7", Operation: tasks.OpSendMessage,
		AccountID: "acc-paris", ChatID: "chat-camille", Text: "Hello Camille, shall we talk on Thursday?",
	}
	rec, created, _ := svc.Enqueue(ctx, req, "sequencer")
	fmt.Println(rec.State, created)
	_, created, _ = svc.Enqueue(ctx, req, "sequencer") // a retry of the same call
	fmt.Println(created)

	_, err = svc.Approve(ctx, req.SendID, rec.Digest, "sequencer")
	fmt.Println(err)
	rec, _ = svc.Approve(ctx, req.SendID, rec.Digest, "camille.manager")
	fmt.Println(rec.State, rec.Approval.By)

	n, _ := svc.ReleaseOnce(ctx)
	fmt.Println("released", n, "as task", tasks.TaskID(req.SendID, 1))
	// Output:
	// pending_approval true
	// false
	// approve: send seq-42:step-3:contact-7: the requester cannot approve their own send
	// approved camille.manager
	// released 1 as task seq-42:step-3:contact-7/r1
}
