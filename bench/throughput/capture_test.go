package main

import (
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func TestFinishCapture(t *testing.T) {
	f := &finishCapture{at: map[string]time.Time{}}
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	core := zapcore.NewTee(zapcore.NewCore(enc, zapcore.AddSync(discard{}), zapcore.InfoLevel), f)
	log := zap.New(core).Named("worker").Named("worker")
	log.With(zap.String("send_id", "s1"), zap.String("operation", "x")).Info("send finished", zap.String("state", "sent"))
	log.Info("send finished", zap.String("send_id", "s2"))
	if len(f.at) != 2 {
		t.Fatalf("captured %v", f.at)
	}
}
