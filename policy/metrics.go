package policy

import (
	"mime"
	"net/mail"
	"regexp"

	"github.com/emersion/go-message/charset"
	"github.com/prometheus/client_golang/prometheus"
)

var addressParser = mail.AddressParser{WordDecoder: &mime.WordDecoder{CharsetReader: charset.Reader}}

// Metrics count policy verdicts for /metrics.
type Metrics struct {
	verdicts *prometheus.CounterVec
	findings *prometheus.CounterVec
	// unavailable counts checks that could not decide (DNS or rspamd
	// failures), which are neutral.
	unavailable *prometheus.CounterVec
	// Password checks (hashgate.go).
	hashesRunning prometheus.Gauge
	hashesPeak    prometheus.Gauge
	authBusy      prometheus.Counter
	// Outbound mail (sender.go).
	outAttempts *prometheus.CounterVec
	outFailures *prometheus.CounterVec
	outDSNs     *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		verdicts:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "abox_spam_verdicts_total", Help: "Content verdicts by action."}, []string{"action"}),
		findings:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "abox_spam_findings_total", Help: "Content findings that counted, by check."}, []string{"check"}),
		unavailable:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "abox_spam_checks_unavailable_total", Help: "Checks that could not decide (DNS lookup or rspamd failed or timed out) and counted as neutral, by check."}, []string{"check"}),
		hashesRunning: prometheus.NewGauge(prometheus.GaugeOpts{Name: "abox_auth_hashes_running", Help: "Password checks (argon2id) running now."}),
		hashesPeak:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "abox_auth_hashes_running_peak", Help: "The most password checks that have run at once since start (at most auth-hash-concurrency)."}),
		authBusy:      prometheus.NewCounter(prometheus.CounterOpts{Name: "abox_auth_busy_total", Help: "Logins answered with a temporary failure because no password check slot freed in time."}),
		outAttempts:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "abox_outbound_recipient_attempts_total", Help: "Outbound delivery attempts per recipient, by result (delivered, deferred, failed)."}, []string{"result"}),
		outFailures:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "abox_outbound_failures_total", Help: "Outbound recipients deferred or refused, by enhanced status code (the reason)."}, []string{"reason"}),
		outDSNs:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "abox_outbound_notifications_total", Help: "Delivery status notifications sent to senders, by action (failed, delayed, relayed)."}, []string{"action"}),
	}
	if reg != nil {
		reg.MustRegister(m.verdicts, m.findings, m.unavailable, m.hashesRunning, m.hashesPeak, m.authBusy, m.outAttempts, m.outFailures, m.outDSNs)
	}
	return m
}

// outAttempt counts one recipient's outcome of an attempt.
func (m *Metrics) outAttempt(o OutOutcome) {
	if m == nil {
		return
	}
	switch o.Status {
	case OutDelivered:
		m.outAttempts.WithLabelValues("delivered").Inc()
		return
	case OutFailed:
		m.outAttempts.WithLabelValues("failed").Inc()
	default:
		m.outAttempts.WithLabelValues("deferred").Inc()
	}
	// The code comes from the remote server: only a well-formed one
	// becomes a label, so a hostile server cannot grow the series.
	reason := "other"
	if enhancedCode.MatchString(o.Enhanced) {
		reason = o.Enhanced
	}
	m.outFailures.WithLabelValues(reason).Inc()
}

var enhancedCode = regexp.MustCompile(`^[245]\.[0-9]{1,3}\.[0-9]{1,3}$`)

// outDSN counts a notification sent.
func (m *Metrics) outDSN(a dsnAction) {
	if m != nil {
		m.outDSNs.WithLabelValues(string(a)).Inc()
	}
}
