package main

import (
	"io"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill"
	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"
	"go.uber.org/zap/zapcore"
)

// newLogger builds the one zap logger everything logs through: engines get named children, and River and watermill
// get slog views of it, so there is a single stream with one format.
func newLogger(c *config, out io.Writer) *zap.Logger {
	level, _ := zapcore.ParseLevel(c.LogLevel) // validated already
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.TimeKey = "time"
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	encCfg.EncodeDuration = zapcore.StringDurationEncoder
	var enc zapcore.Encoder
	if c.LogFormat == "console" {
		encCfg.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	} else {
		enc = zapcore.NewJSONEncoder(encCfg)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(out), level))
}

// watermillLogger adapts a zap logger for watermill through slog.
func watermillLogger(l *zap.Logger) watermill.LoggerAdapter {
	return watermill.NewSlogLogger(slog.New(zapslog.NewHandler(l.Core())))
}
