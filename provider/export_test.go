package provider

import (
	"context"
	"time"
)

// SetSleep replaces the wait between read retries, so that the tests of package
// provider_test can record the waits (and act during them) instead of sleeping.
func SetSleep(c *Client, sleep func(ctx context.Context, d time.Duration) error) { c.sleep = sleep }
