// Command server is the ai-infra backend API.
package main

import (
	"flag"
	"log"
	"net/http"
)

func main() {
	config := flag.String("config", "/etc/backend/backend.yaml", "path to the config file")
	flag.Parse()
	log.Printf("ai-infra backend starting (config %s)", *config)

	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	log.Fatal(http.ListenAndServe(":8080", mux))
}
