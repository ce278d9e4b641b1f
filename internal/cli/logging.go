package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/aws/smithy-go/logging"
	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"
	"go.uber.org/zap/zapcore"

	"github.com/viaduct-nys/viaduct/pkg/casedb"
)

// NewLogger builds the one zap logger everything logs through: engines get named children, and River and watermill
// get slog views of it, so there is a single stream with one format.
func NewLogger(c *Config, out io.Writer) *zap.Logger {
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
	logger := zap.New(zapcore.NewCore(enc, zapcore.AddSync(out), level))
	if errLog, ok := out.(*stderrLog); ok {
		errLog.logger = logger
	}
	return logger
}

// stderrLog is a command's stderr. Once the command has built its logger on it, the error the command ends with is
// logged through that logger, as one line of the log like the rest (JSON by default), not as text a log collector
// would take for a line of its own; before that (a configuration error), it is printed.
type stderrLog struct {
	w      io.Writer
	logger *zap.Logger
}

// Write implements io.Writer.
func (s *stderrLog) Write(p []byte) (int, error) { return s.w.Write(p) }

// fatal reports the error command ends with, in the same words either way.
func (s *stderrLog) fatal(command string, err error) {
	msg := fmt.Sprintf("viaduct %s: %v", command, err)
	if s.logger == nil {
		fmt.Fprintln(s.w, msg)
		return
	}
	s.logger.Error(msg, zap.String("command", command))
	_ = s.logger.Sync()
}

// watermillLogger adapts a zap logger for watermill through slog.
func watermillLogger(l *zap.Logger) watermill.LoggerAdapter {
	return watermill.NewSlogLogger(slogFor(l))
}

// slogFor is l as a slog logger for the libraries that log through slog (River, watermill), keeping l's name: a
// zap core knows nothing of names, so without it their lines would carry no logger. River's line for a failed
// attempt of a job whose worker logs its own failures is lowered to Debug (quietRetries).
func slogFor(l *zap.Logger) *slog.Logger {
	return slog.New(quietRetries{zapslog.NewHandler(l.Core(), zapslog.WithName(l.Name()))})
}

// selfLoggingKinds are the River job kinds whose workers log each failed attempt themselves, with what failed and
// when the next attempt comes: Engine 4's.
var selfLoggingKinds = []string{casedb.CaseLoaderArgs{}.Kind()}

// quietRetries lowers to Debug River's Info line for a failed attempt ("JobExecutor: Job errored; retrying", and
// "Job errored" after the last) of a job in selfLoggingKinds, so that a retry is one line in the log, the worker's.
type quietRetries struct{ slog.Handler }

// Handle implements slog.Handler.
func (h quietRetries) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Level == slog.LevelInfo && (strings.HasSuffix(rec.Message, ": Job errored; retrying") ||
		strings.HasSuffix(rec.Message, ": Job errored")) {
		rec.Attrs(func(a slog.Attr) bool {
			if a.Key == "job_kind" && slices.Contains(selfLoggingKinds, a.Value.String()) {
				rec.Level = slog.LevelDebug
				return false
			}
			return true
		})
	}
	return h.Handler.Handle(ctx, rec)
}

// WithAttrs implements slog.Handler.
func (h quietRetries) WithAttrs(attrs []slog.Attr) slog.Handler {
	return quietRetries{h.Handler.WithAttrs(attrs)}
}

// WithGroup implements slog.Handler.
func (h quietRetries) WithGroup(name string) slog.Handler {
	return quietRetries{h.Handler.WithGroup(name)}
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
