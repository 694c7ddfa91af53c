package daemon

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/finvirt/finvirt/internal/audit"
)

// metrics is the daemon's Prometheus registry (one per daemon, so tests can run several).
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	handler  http.Handler
}

// objectKinds are counted at scrape time straight from the store's key space.
var objectKinds = map[string]string{
	"project":      projectPrefix,
	"identity":     identityPrefix,
	"token":        tokenPrefix,
	"approval":     approvalPrefix,
	"audit_record": audit.Prefix,
}

type objectCollector struct {
	d    *Daemon
	desc *prometheus.Desc
	rev  *prometheus.Desc
}

func (c *objectCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc; ch <- c.rev }

func (c *objectCollector) Collect(ch chan<- prometheus.Metric) {
	for kind, prefix := range objectKinds {
		n, err := c.d.store.Count(context.Background(), prefix)
		if err != nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), kind)
	}
	ch <- prometheus.MustNewConstMetric(c.rev, prometheus.GaugeValue, float64(c.d.store.Rev()))
}

func newMetrics(d *Daemon) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "finvirt_api_requests_total", Help: "API requests by route, method and status code.",
	}, []string{"route", "method", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "finvirt_api_request_duration_seconds", Help: "API request latency by route and method.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
	}, []string{"route", "method"})
	m.reg.MustRegister(m.requests, m.latency,
		&objectCollector{d: d,
			desc: prometheus.NewDesc("finvirt_objects", "Objects in the state store by kind.", []string{"kind"}, nil),
			rev:  prometheus.NewDesc("finvirt_store_revision", "Newest committed state store revision.", nil, nil)},
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	return m
}

func (m *metrics) observe(rt *Route, status int, d time.Duration) {
	m.requests.WithLabelValues(rt.Path, rt.Method, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(rt.Path, rt.Method).Observe(d.Seconds())
}

func (d *Daemon) handleMetrics(w http.ResponseWriter, r *http.Request, rc *Request) error {
	d.metrics.handler.ServeHTTP(w, r)
	return nil
}
