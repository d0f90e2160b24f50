package main

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"abox/store"
	"abox/store/pgstore"
)

// Under systemd (Type=notify, docs/abox.service), serve tells the service
// manager when it is ready (after every listener is bound), when it
// stops, and, with WatchdogSec=, that it is alive: every half interval,
// only while the store answers, so a server whose store hangs is
// restarted (on the PostgreSQL backend a database that is down does not
// stop the pings: every node would restart for nothing). Without NOTIFY_SOCKET all of it does nothing.

// notifyReady tells systemd the listeners are up, and starts the
// watchdog pings; the returned function stops them.
func notifyReady(st Store, log *slog.Logger) func() {
	if ok, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		log.Warn("systemd: READY=1 not sent", "err", err)
	} else if ok {
		log.Info("systemd: told ready")
	}
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval <= 0 {
		return func() {}
	}
	ctx, stop := context.WithCancel(context.Background())
	go func() {
		t := time.NewTicker(interval / 2)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_, err := st.Domains()
				if ctx.Err() != nil {
					// Stopping: the store may be closing under a check
					// still in flight (a new connection to PostgreSQL
					// cancelled), which is no fault of the store.
					return
				}
				if err != nil {
					// A shared database that is down is not this
					// process's fault, and a restart would not bring it
					// back: keep pinging, so that every node does not
					// restart at once and then wait for it anyway.
					if _, shared := st.(*pgstore.Store); shared && errors.Is(err, store.ErrStorageFailing) {
						log.Warn("systemd watchdog: the database does not answer; pinging anyway (a restart would not help)", "err", err)
					} else {
						log.Error("systemd watchdog: the store does not answer; no ping", "err", err)
						continue
					}
				}
				daemon.SdNotify(false, daemon.SdNotifyWatchdog)
			}
		}
	}()
	log.Info("systemd watchdog on", "interval", interval)
	return stop
}

// notifyStopping tells systemd the server is shutting down.
func notifyStopping() { daemon.SdNotify(false, daemon.SdNotifyStopping) }
