package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/aws/smithy-go/logging"
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
	return watermill.NewSlogLogger(slogFor(l))
}

// slogFor is l as a slog logger for the libraries that log through slog (River, watermill), keeping l's name: a
// zap core knows nothing of names, so without it their lines would carry no logger.
func slogFor(l *zap.Logger) *slog.Logger {
	return slog.New(zapslog.NewHandler(l.Core(), zapslog.WithName(l.Name())))
}

// awsLogger routes the AWS SDK's own messages (a response without a checksum it can validate, say), which it would
// otherwise print as plain text on stderr, into the JSON log under the logger "aws".
type awsLogger struct{ l *zap.Logger }

// Logf implements the SDK's logging.Logger.
func (a awsLogger) Logf(classification logging.Classification, format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if classification == logging.Warn {
		a.l.Warn(msg)
		return
	}
	a.l.Debug(msg)
}
