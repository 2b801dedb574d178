// Command go-http is a minimal net/http app following the Hop3 example-app contract.
package main

import (
	"context"
	"encoding/json"
	"log"
	"net/http"
	"os"
	"os/signal"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const name = "go-http"

func text(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

func main() {
	raw, err := os.ReadFile("VERSION")
	if err != nil {
		log.Fatalf("reading VERSION: %v", err)
	}
	version := strings.TrimSpace(string(raw))
	port, err := strconv.Atoi(os.Getenv("PORT"))
	if err != nil {
		log.Fatalf("PORT must be a number: %v", err)
	}
	username := strconv.Itoa(os.Getuid())
	if u, err := user.Current(); err == nil {
		username = u.Username
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		text(w, http.StatusOK, "Hello from "+name+" v"+version)
	})
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		text(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("/config/", func(w http.ResponseWriter, r *http.Request) {
		value, ok := os.LookupEnv("APP_" + strings.TrimPrefix(r.URL.Path, "/config/"))
		if !ok {
			text(w, http.StatusNotFound, "not set")
			return
		}
		text(w, http.StatusOK, value)
	})
	mux.HandleFunc("/whoami", func(w http.ResponseWriter, r *http.Request) {
		var release *string
		if v, ok := os.LookupEnv("HOP3_RELEASE"); ok {
			release = &v
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"pid": os.Getpid(), "port": port, "user": username, "release": release,
		})
	})

	srv := &http.Server{
		Addr:              "127.0.0.1:" + strconv.Itoa(port),
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		log.Printf("%s v%s listening on %s", name, version, srv.Addr)
		if err := srv.ListenAndServe(); err != http.ErrServerClosed {
			log.Fatal(err)
		}
	}()

	<-ctx.Done() // SIGTERM: stop accepting, finish in-flight requests, exit 0
	log.Print("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Printf("shutdown: %v", err)
	}
}
