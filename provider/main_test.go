package provider

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a goroutine outlives the tests: a multipart producer or a
// response body left open would show here.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
