package smtpd

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the SMTP counters exported on /metrics. One set serves
// every SMTP listener; the listener is a label.
type Metrics struct {
	accepted     *prometheus.CounterVec
	rejections   *prometheus.CounterVec
	bytes        *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	sessions     *prometheus.GaugeVec
	authFailures *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg (nil: not
// registered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "abox_smtp_messages_accepted_total", Help: "Messages stored after DATA/BDAT.",
		}, []string{"listener"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "abox_smtp_rejections_total", Help: "Commands or connections refused, by reason.",
		}, []string{"listener", "reason"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "abox_smtp_bytes_total", Help: "Bytes of messages stored (as stored, with trace headers).",
		}, []string{"listener"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "abox_smtp_delivery_seconds", Help: "From the start of DATA/BDAT to the reply after the durable commit.",
			Buckets: []float64{.0005, .001, .002, .003, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"listener"}),
		sessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "abox_smtp_sessions", Help: "SMTP sessions open now.",
		}, []string{"listener"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "abox_smtp_auth_failures_total", Help: "Failed AUTH attempts.",
		}, []string{"listener"}),
	}
	if reg != nil {
		reg.MustRegister(m.accepted, m.rejections, m.bytes, m.latency, m.sessions, m.authFailures)
	}
	return m
}

func (m *Metrics) rejected(listener, reason string) {
	m.rejections.WithLabelValues(listener, reason).Inc()
}
