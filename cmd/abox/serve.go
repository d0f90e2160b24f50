package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"abox/evidence"
	"abox/imapd"
	"abox/policy"
	"abox/smtpd"
	"abox/store"
)

// drainTimeout is how long serve lets in-flight transactions finish after
// SIGTERM (SPEC: up to 10 s).
const drainTimeout = 10 * time.Second

func (a *app) serveCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "serve",
		Short: "run every listener until SIGTERM or SIGINT",
		Args:  noArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return a.serve(cmd.Context()) },
	}
	f := c.Flags()
	cfg := &a.cfg
	f.StringVar(&cfg.Hostname, "hostname", cfg.Hostname, "name in the SMTP banner, EHLO reply and Received headers")
	f.StringVar(&cfg.ListenSMTP, "listen-smtp", cfg.ListenSMTP, "inbound SMTP (MX) address; empty disables")
	f.StringVar(&cfg.ListenSubmission, "listen-submission", cfg.ListenSubmission, "submission (STARTTLS) address; empty disables")
	f.StringVar(&cfg.ListenSubmissions, "listen-submissions", cfg.ListenSubmissions, "submission over implicit TLS; empty disables")
	f.StringVar(&cfg.ListenIMAP, "listen-imap", cfg.ListenIMAP, "IMAP (STARTTLS) address; empty disables")
	f.StringVar(&cfg.ListenIMAPS, "listen-imaps", cfg.ListenIMAPS, "IMAP over implicit TLS; empty disables")
	f.StringVar(&cfg.ListenHTTP, "listen-http", cfg.ListenHTTP, "HTTP: /metrics, /healthz, notice API; empty disables")
	f.StringVar(&cfg.ListenHTTPS, "listen-https", cfg.ListenHTTPS, "HTTPS (the IMAP certificate): the provisioning API, the notice API, /metrics, /healthz; empty disables")
	f.StringVar(&cfg.TLSCert, "tls-cert", cfg.TLSCert, "certificate chain (PEM); default: self-signed, generated into DIR")
	f.StringVar(&cfg.TLSKey, "tls-key", cfg.TLSKey, "private key (PEM) of --tls-cert")
	f.StringSliceVar(&cfg.TrustedNetworks, "trusted-networks", cfg.TrustedNetworks, "networks exempt from per-IP limits")
	f.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "auto (text on a terminal, JSON otherwise), text or json")
	f.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error")
	f.BoolVar(&cfg.SpamTestPatterns, "spam-test-patterns", cfg.SpamTestPatterns, "file messages with GTUBE's YJS variant in Junk (off by default, as in rspamd)")
	f.IntVar(&cfg.GCHeadroomMiB, "gc-headroom-mib", cfg.GCHeadroomMiB, "MiB the heap may grow over its live size between collections (0: Go's default; the GOGC environment variable wins)")
	f.StringVar(&cfg.ReserveSpace, "reserve-space", cfg.ReserveSpace, "SIZE of disk kept in reserve beside the database so acknowledged mail always reaches it when the disk fills (0: none)")
	f.StringVar(&cfg.EvidenceKey, "evidence-key", cfg.EvidenceKey, "Ed25519 private key (PEM, mode 0600, kept outside DIR's database) that signs the evidence log's tree heads")
	f.StringVar(&cfg.EvidenceInterval, "evidence-interval", cfg.EvidenceInterval, "DURATION between signed tree heads (only when the log grew); 0: on demand only")
	f.StringSliceVar(&cfg.ConsentAnchors, "consent-trust-anchors", cfg.ConsentAnchors, "PEM files of the national CA's roots and intermediates that consent signatures must chain to (set it in abox.toml so every command sees it)")
	f.StringVar(&cfg.ConsentCRLDir, "consent-crl-dir", cfg.ConsentCRLDir, "directory of the CAs' CRLs (PEM or DER), kept current by the operator")
	f.StringVar(&cfg.ConsentCRLRecheck, "consent-crl-recheck", cfg.ConsentCRLRecheck, "DURATION between looks at consent-crl-dir for changed files; 0: at every check")
	f.StringVar(&cfg.ConsentMaxAge, "consent-max-age", cfg.ConsentMaxAge, "DURATION: older signed consent statements are refused; 0: no limit")
	f.BoolVar(&cfg.Pprof, "pprof", cfg.Pprof, "serve Go's /debug/pprof on the HTTP listener (for profiling; keep the listener private)")
	bindConfigFlags(f, cfg)
	return c
}

// bindConfigFlags makes every config key not bound above a flag of its
// own name too (the README promises keys and flags are the same), with
// the key's type; the README's configuration table explains each.
func bindConfigFlags(f *pflag.FlagSet, cfg *Config) {
	v := reflect.ValueOf(cfg).Elem()
	for i := range v.NumField() {
		key := v.Type().Field(i).Tag.Get("toml")
		if key == "" || key == "data" || key == "store" || f.Lookup(key) != nil { // data and store are global flags
			continue
		}
		usage := "config key " + key + " (see the README's configuration table)"
		switch p := v.Field(i).Addr().Interface().(type) {
		case *string:
			f.StringVar(p, key, *p, usage)
		case *int:
			f.IntVar(p, key, *p, usage)
		case *bool:
			f.BoolVar(p, key, *p, usage)
		case *float64:
			f.Float64Var(p, key, *p, usage)
		case *uint32:
			f.Uint32Var(p, key, *p, usage)
		case *uint8:
			f.Uint8Var(p, key, *p, usage)
		case *[]string:
			f.StringSliceVar(p, key, *p, usage)
		default:
			panic("config key " + key + ": no flag for its type")
		}
	}
}

// service is one protocol server on one listener.
type service interface {
	Serve(net.Listener) error
	// Shutdown stops accepting at once and waits (until ctx ends) for
	// sessions to finish their transactions.
	Shutdown(ctx context.Context) error
}

// server is a running `abox serve`.
type server struct {
	cfg      *Config
	log      *slog.Logger
	store    Store
	tls      *tls.Config
	registry *prometheus.Registry
	env      *env
	policy   *policy.Engine
	smtpm    *smtpd.Metrics
	imapm    *imapd.Metrics
	httpc    httpConns

	// ports are the bound listeners' ports by name (written before
	// any listener serves), for the documents clients set up from.
	ports map[string]int

	api *api // the provisioning API, on both HTTP listeners

	// leases keep the one-node jobs on one node (jobs.go): nil on the
	// bbolt backend, where this process is the only one.
	leases   leaseStore
	leaseTTL time.Duration
	node     string // this process as a lease holder

	imapMu      sync.Mutex
	imapServers []*imapd.Server // to end an account's sessions (endSessions)
}

// endSessions ends the IMAP sessions of an account that may no longer
// go on (blocked, deleted, password changed); submission sessions are
// ended at their next MAIL.
func (s *server) endSessions(acctID uint64) {
	s.imapMu.Lock()
	servers := slices.Clone(s.imapServers)
	s.imapMu.Unlock()
	for _, is := range servers {
		if n := is.EndInvalidSessions(acctID); n > 0 {
			s.log.Info("ended sessions of a changed account", "account_id", acctID, "sessions", n)
		}
	}
}

func (a *app) serve(ctx context.Context) error {
	cfg := &a.cfg
	log := a.log
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if cfg.GCHeadroomMiB < 0 {
		return fmt.Errorf("gc-headroom-mib must not be negative, not %d", cfg.GCHeadroomMiB)
	}
	if os.Getenv("GOGC") == "" && cfg.GCHeadroomMiB > 0 {
		gcCtx, stopGC := context.WithCancel(context.Background())
		defer stopGC()
		go tuneGC(gcCtx, cfg.GCHeadroomMiB, log)
	}
	opened, err := openServeStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer opened.Close()
	st := opened.Store // never the wrapper: env.file finds the bbolt store by its type
	tlsConfig, certs, err := loadTLS(cfg, time.Now())
	if err != nil {
		return err
	}
	warnAtStart(cfg, certs.leaf(), st, time.Now(), log)
	stopReloads := reloadOnHangup(certs, log)
	defer stopReloads()
	srv := &server{cfg: cfg, log: log, store: st, tls: tlsConfig, registry: prometheus.NewRegistry(), leases: opened.leaseStore(), node: nodeName()}
	srv.leaseTTL, _ = parseDuration(cfg.LeaseTTL)
	pc := cfg.policyConfig()
	pc.Metrics = policy.NewMetrics(srv.registry)
	cv, err := cfg.consentVerifier()
	if err != nil {
		return err
	}
	logConsentSetup(log, cfg, cv, st.Now())
	reloadConsentOnHUP(ctx, log, cv, st.Now)
	pc.Consent = cv
	if pc.Outbound = cfg.outboundConfig(); pc.Outbound != nil {
		tr, err := cfg.newOutboundTransport(log.With("component", "outbound"))
		if err != nil {
			return err
		}
		// Runs after the sender loop has stopped (<-outDone below): its
		// idle connections end with QUIT.
		defer tr.Close()
		pc.Outbound.Transport, pc.Outbound.Logger = tr, log.With("component", "outbound")
	}
	srv.policy = policy.New(st, pc)
	srv.env = &env{store: st, cfg: cfg, log: log, engine: srv.policy, consentV: cv, endSessions: srv.endSessions}
	if cfg.EvidenceKey != "" {
		// Refuse to start with a key that cannot sign: evidence would
		// silently go unsigned.
		if srv.env.evidenceKey, err = evidence.LoadPrivateKey(cfg.EvidenceKey); err != nil {
			return err
		}
	}
	srv.registerMetrics()
	if opened.file != nil {
		srv.registerFileMetrics(opened.file)
	} else {
		srv.registerPoolMetrics(opened.pg.Pool())
		srv.registerCommitMetrics(opened.pg)
		// A block, deletion or password change made through another
		// node ends this node's sessions of that account too.
		opened.pg.OnAccountChanged(srv.endSessions)
	}
	srv.httpc.register(srv.registry)
	srv.smtpm = smtpd.NewMetrics(srv.registry)
	srv.imapm = imapd.NewMetrics(srv.registry)

	type bound struct {
		name string
		ln   net.Listener
		svc  service
	}
	var all []bound
	closeAll := func() {
		for _, b := range all {
			b.ln.Close()
		}
	}
	for _, l := range srv.listeners() {
		if l.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			closeAll()
			return fmt.Errorf("%s listener: %w", l.name, err)
		}
		if l.name == "http" || l.name == "https" {
			ln = srv.httpc.listener(ln, cfg.HTTPConnections)
		}
		// TLS outermost: net/http sees a *tls.Conn, so requests carry
		// their TLS state (the API refuses credentials without it).
		if l.implicitTLS {
			ln = tls.NewListener(ln, tlsConfig)
		}
		all = append(all, bound{l.name, ln, l.svc})
	}
	srv.ports = map[string]int{}
	for _, b := range all {
		if ta, ok := b.ln.Addr().(*net.TCPAddr); ok {
			srv.ports[b.name] = ta.Port
		}
	}
	ctl, err := listenControl(cfg.socketPath(), srv.env)
	if err != nil {
		closeAll()
		return err
	}
	go ctl.serve()
	sweepCtx, stopSweeps := context.WithCancel(context.Background())
	sweepsDone := srv.startScheduler(sweepCtx)
	headsDone := srv.startHeadSigner(sweepCtx)
	buildDone := srv.startEvidenceBuilder(sweepCtx)
	outDone := srv.startOutbound(sweepCtx)

	var wg sync.WaitGroup
	attrs := []any{"data", cfg.Data, "hostname", cfg.Hostname}
	for _, b := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.svc.Serve(b.ln); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, http.ErrServerClosed) {
				log.Error("listener stopped", "listener", b.name, "err", err)
			}
		}()
		attrs = append(attrs, b.name, b.ln.Addr().String())
	}
	log.Info("ready", attrs...)
	stopWatchdog := notifyReady(st, log)

	<-ctx.Done()
	stopWatchdog()
	notifyStopping()
	log.Info("shutting down: no new connections; draining", "timeout", drainTimeout)
	drain, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	var sd sync.WaitGroup
	for _, b := range all {
		sd.Add(1)
		go func() {
			defer sd.Done()
			if err := b.svc.Shutdown(drain); err != nil {
				log.Warn("listener did not drain in time", "listener", b.name, "err", err)
			}
		}()
	}
	sd.Wait()
	stopSweeps()
	<-sweepsDone
	<-headsDone
	<-buildDone
	<-outDone
	ctl.close()
	wg.Wait()
	if err := opened.Close(); err != nil {
		return fmt.Errorf("closing the store: %w", err)
	}
	log.Info("stopped")
	flushLog(log)
	return nil
}

type listenerSpec struct {
	name        string
	addr        string
	implicitTLS bool // wrap the listener in TLS here (imapd wraps its own)
	svc         service
}

func (s *server) listeners() []listenerSpec {
	return []listenerSpec{
		{"smtp", s.cfg.ListenSMTP, false, s.smtp("smtp", smtpd.MX, false)},
		{"submission", s.cfg.ListenSubmission, false, s.smtp("submission", smtpd.Submission, false)},
		{"submissions", s.cfg.ListenSubmissions, true, s.smtp("submissions", smtpd.Submission, true)},
		{"imap", s.cfg.ListenIMAP, false, s.imap("imap", false)},
		{"imaps", s.cfg.ListenIMAPS, false, s.imap("imaps", true)}, // imapd runs its own TLS
		{"http", s.cfg.ListenHTTP, false, s.httpService()},
		{"https", s.cfg.ListenHTTPS, true, s.httpService()},
	}
}

func (s *server) smtp(name string, mode smtpd.Mode, implicitTLS bool) service {
	hello, _ := parseDuration(s.cfg.SMTPHelloTimeout)
	return smtpd.New(smtpd.Config{
		Name: name, Mode: mode, Hostname: s.cfg.Hostname, TLS: s.tls, ImplicitTLS: implicitTLS,
		Policy: s.policy, Log: s.log, Metrics: s.smtpm,
		MaxConnections: s.cfg.SMTPConnections, MaxPerNetwork: s.cfg.SMTPPerNetwork, HelloTimeout: hello,
		MaxUnknownRecipients: s.cfg.SMTPUnknownRcpts,
	})
}

func (s *server) imap(name string, implicitTLS bool) service {
	is := imapd.New(imapd.Config{
		Name: name, TLS: s.tls, ImplicitTLS: implicitTLS, Policy: s.policy, Store: s.store,
		Log: s.log, Metrics: s.imapm, Version: version(),
	})
	s.imapMu.Lock()
	s.imapServers = append(s.imapServers, is)
	s.imapMu.Unlock()
	return is
}

// httpService serves /healthz and /metrics.
func (s *server) httpService() service {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if _, err := s.store.Domains(); err != nil {
			http.Error(w, "store unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}))
	if s.api == nil {
		s.api = newAPI(s)
	}
	s.api.register(mux)
	mux.HandleFunc("GET /v1/notices/{id...}", s.noticeHandler)
	mux.HandleFunc("GET /v1/receipts/{id...}", s.noticeHandler)
	mux.HandleFunc("GET /.well-known/autoconfig/mail/config-v1.1.xml", s.autoconfigHandler)
	mux.HandleFunc("GET /mail/config-v1.1.xml", s.autoconfigHandler)
	mux.HandleFunc("GET /.well-known/mta-sts.txt", s.mtaSTSHandler)
	mux.HandleFunc("POST /autodiscover/autodiscover.xml", s.autodiscoverHandler)
	mux.HandleFunc("POST /Autodiscover/Autodiscover.xml", s.autodiscoverHandler)
	mux.HandleFunc("GET /apple/mail.mobileconfig", s.mobileconfigHandler)
	if s.cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return &httpServer{srv: &http.Server{
		Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 2 * time.Minute,
		// Requests here are short GETs; Go's default allows 1 MiB of
		// header per connection.
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}}
}

type httpServer struct{ srv *http.Server }

func (h *httpServer) Serve(ln net.Listener) error        { return h.srv.Serve(ln) }
func (h *httpServer) Shutdown(ctx context.Context) error { return h.srv.Shutdown(ctx) }

// registerMetrics registers what every backend has: Go's and the
// process's collectors and the outbound queue.
func (s *server) registerMetrics() {
	r := s.registry
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "abox_outbound_queue_entries", Help: "Outbound queue entries (one per message and destination domain) waiting, being sent or held.",
	}, func() float64 { st, _ := s.store.QueueStats(); return float64(st.Entries) }))
	r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "abox_outbound_queue_oldest_seconds", Help: "Age of the oldest outbound queue entry (0 when the queue is empty).",
	}, func() float64 {
		st, _ := s.store.QueueStats()
		if st.Oldest.IsZero() {
			return 0
		}
		return s.store.Now().Sub(st.Oldest).Seconds()
	}))
}

// registerFileMetrics registers the bbolt file's writer, size and body
// segments (the PostgreSQL backend has its pool's instead:
// registerPoolMetrics).
func (s *server) registerFileMetrics(file *store.Store) {
	r := s.registry
	r.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "abox_store_commits_total", Help: "Commits of the database file (each one fsync'd): checkpoints of the write-ahead log and writes that are not logged.",
	}, func() float64 { return float64(file.WriterStats().Commits) }))
	r.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "abox_store_write_requests_total", Help: "Write requests acknowledged; divided by commits plus log records, the group-commit factor.",
	}, func() float64 { return float64(file.WriterStats().Requests) }))
	r.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "abox_store_commit_work_seconds_total", Help: "Time the writer spent running requests inside write transactions.",
	}, func() float64 { return file.WriterStats().Work.Seconds() }))
	r.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "abox_store_commit_io_seconds_total", Help: "Time the writer spent writing and fsyncing commits.",
	}, func() float64 { return file.WriterStats().IO.Seconds() }))
	r.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "abox_store_wal_records_total", Help: "Write-ahead log records written (each one fdatasync'd): batches of deliveries acknowledged before their checkpoint.",
	}, func() float64 { return float64(file.WriterStats().LogRecords) }))
	r.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "abox_store_wal_io_seconds_total", Help: "Time the writer spent writing and syncing write-ahead log records.",
	}, func() float64 { return file.WriterStats().LogIO.Seconds() }))
	r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "abox_store_file_bytes", Help: "Size of the database file.",
	}, func() float64 { return float64(file.FileSize()) }))
	r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "abox_store_segment_files", Help: "Body segment files (bodies of 16 KiB and more).",
	}, func() float64 { return float64(file.SegmentStats().Files) }))
	r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "abox_store_segment_bytes", Help: "Bytes in body segment files, referenced or not yet compacted.",
	}, func() float64 { return float64(file.SegmentStats().Bytes) }))
	r.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "abox_store_segment_compactions_total", Help: "Body segments compacted (their remaining bodies moved, the file removed).",
	}, func() float64 { return float64(file.SegmentStats().Compactions) }))
	r.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "abox_store_segment_compacted_bytes_total", Help: "Bytes of bodies moved by compaction.",
	}, func() float64 { return float64(file.SegmentStats().CompactedBytes) }))
}

// startOutbound runs the outbound sender loop until ctx ends; the
// channel closes once every attempt it started is recorded.
func (s *server) startOutbound(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	if !s.policy.Outbound() {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		if err := s.policy.RunOutbound(ctx); err != nil {
			s.log.Error("outbound sender loop stopped", "err", err)
		}
	}()
	return done
}

// startScheduler runs the sweeps every sweep-interval inside serve, as of
// the current time, logging every action; on one node at a time
// (jobs.go). It stops when ctx ends (a sweep in progress stops between
// batches).
func (s *server) startScheduler(ctx context.Context) <-chan struct{} {
	every, _ := parseDuration(s.cfg.SweepInterval)
	if every <= 0 {
		done := make(chan struct{})
		close(done)
		return done
	}
	return s.exclusive(ctx, leaseSweeps, func(ctx context.Context) {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			start := time.Now()
			n := 0
			err := s.policy.Sweep(ctx, start, false, func(a policy.SweepAction) {
				n++
				s.log.Info("sweep", "action", a.Action, "account", a.Account, "detail", a.Detail)
			})
			if err != nil && ctx.Err() == nil {
				s.logJobFailure("sweep failed", err)
			}
			// The API's idempotency keys outlive their day here.
			for ctx.Err() == nil {
				gone, err := s.store.PruneIdempotent(ctx, start.Add(-idempotencyTTL), 10_000)
				if err != nil {
					s.logJobFailure("pruning API idempotency keys", err)
				}
				if err != nil || gone < 10_000 {
					break
				}
			}
			s.log.Info("sweeps done", "actions", n, "took", time.Since(start).Round(time.Millisecond))
		}
	})
}
