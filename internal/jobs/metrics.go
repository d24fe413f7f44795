package jobs

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the Prometheus series of the workers. They are registered
// on the registry the caller passes, never on a global one, and carry
// the worker's name as the label worker, so that the series of many
// worker processes can be told apart and summed.
type Metrics struct {
	copied       prometheus.Counter
	copiedBytes  prometheus.Counter
	failures     *prometheus.CounterVec
	passes       *prometheus.CounterVec
	passDuration *prometheus.HistogramVec
	takeovers    prometheus.Counter
	leaseLosses  prometheus.Counter
}

// NewMetrics creates and registers the series, labelled worker=worker.
func NewMetrics(reg prometheus.Registerer, worker string) *Metrics {
	reg = prometheus.WrapRegistererWith(prometheus.Labels{"worker": worker}, reg)
	m := &Metrics{
		copied: prometheus.NewCounter(prometheus.CounterOpts{Name: "mailferry_messages_copied_total",
			Help: "Messages written to destinations."}),
		copiedBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "mailferry_bytes_copied_total",
			Help: "Bytes of messages written to destinations."}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailferry_failures_total",
			Help: "Failed messages and mailbox passes, by error class."}, []string{"class"}),
		passes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailferry_mailbox_passes_total",
			Help: "Finished mailbox passes by kind and final status."}, []string{"kind", "status"}),
		passDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mailferry_mailbox_pass_duration_seconds",
			Help: "Duration of mailbox passes.", Buckets: prometheus.ExponentialBuckets(0.5, 2, 16)}, []string{"kind"}),
		takeovers: prometheus.NewCounter(prometheus.CounterOpts{Name: "mailferry_takeovers_total",
			Help: "Mailbox passes this worker gave a new job because their worker stopped renewing its lease."}),
		leaseLosses: prometheus.NewCounter(prometheus.CounterOpts{Name: "mailferry_lease_losses_total",
			Help: "Mailbox passes this worker stopped because it could not keep their lease."}),
	}
	reg.MustRegister(m.copied, m.copiedBytes, m.failures, m.passes, m.passDuration, m.takeovers, m.leaseLosses)
	return m
}
