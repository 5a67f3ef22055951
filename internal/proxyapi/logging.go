package proxyapi

import (
	"context"
	"log"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gravitational/teleport-update/internal/lograte"
)

// Log line limits for what clients can make the server log at will.
const (
	// clientLogBurst lines a minute for each kind of client trouble
	// (clients blocked for failed authentication, failed TLS handshakes,
	// census reports whose outcome is unknown).
	clientLogBurst = 10
	// serverLogBurst lines a minute for the server's own trouble that a
	// client may trigger again and again (a failing census database).
	serverLogBurst = 20
	logWindow      = time.Minute
)

// accessLevel is the level of a request's access log line. Any client can
// make as many requests as it likes, so the answers it can get at will are
// debug: successes (a fleet polls find and reports its census all day) and
// the expected client errors (bad request, no or unknown token, unknown
// path, wrong method, too large, rate limited). What is left at info needs
// an operator: 403 (a valid token used from the wrong network, or for a
// group the policy lacks) and server errors.
func accessLevel(code int) slog.Level {
	if code < 400 || code < 500 && code != http.StatusForbidden {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// logLimits are the Server's bounded log lines.
type logLimits struct {
	blocked *lograte.Limiter // clients blocked for failed authentication
	unknown *lograte.Limiter // census reports whose outcome is unknown
	census  *lograte.Limiter // census reports the backend failed to store
}

func newLogLimits(now func() time.Time) logLimits {
	return logLimits{
		blocked: lograte.New(clientLogBurst, logWindow, now),
		unknown: lograte.New(clientLogBurst, logWindow, now),
		census:  lograte.New(serverLogBurst, logWindow, now),
	}
}

// logLimited logs through lim at level, adding how many lines lim dropped
// since the last one.
func logLimited(ctx context.Context, logger *slog.Logger, lim *lograte.Limiter, level slog.Level, msg string, args ...any) {
	ok, dropped := lim.Allow()
	if !ok {
		return
	}
	if dropped > 0 {
		args = append(args, "similar_lines_dropped", dropped)
	}
	logger.Log(ctx, level, msg, args...)
}

// NewErrorLog returns the logger for http.Server.ErrorLog. net/http logs a
// line there for every failed TLS handshake, which any client can cause as
// often as it likes: those lines are logged at info, at most clientLogBurst
// a minute. The server's own trouble (accept errors, a handler that
// panicked) is logged at warn under a limit of its own, so a flood of
// handshakes cannot hide it.
func NewErrorLog(logger *slog.Logger) *log.Logger {
	return newErrorLog(logger, time.Now)
}

func newErrorLog(logger *slog.Logger, now func() time.Time) *log.Logger {
	w := &errorLogWriter{
		logger:     logger,
		handshakes: lograte.New(clientLogBurst, logWindow, now),
		other:      lograte.New(serverLogBurst, logWindow, now),
	}
	return log.New(w, "", 0)
}

type errorLogWriter struct {
	logger            *slog.Logger
	handshakes, other *lograte.Limiter
}

func (w *errorLogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	lim, level := w.other, slog.LevelWarn
	if strings.Contains(msg, "TLS handshake error") {
		lim, level = w.handshakes, slog.LevelInfo
	}
	logLimited(context.Background(), w.logger, lim, level, msg)
	return len(p), nil
}
