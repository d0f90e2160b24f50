package policy

import (
	"mime"
	"net/mail"

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
	}
	if reg != nil {
		reg.MustRegister(m.verdicts, m.findings, m.unavailable, m.hashesRunning, m.hashesPeak, m.authBusy)
	}
	return m
}
