package api

import "net/http"

// Endpoints is built by the subscriptions issue.
type Endpoints interface{}

func (s *Server) createEndpoint(w http.ResponseWriter, r *http.Request) { s.notYet(w) }
func (s *Server) listEndpoints(w http.ResponseWriter, r *http.Request)  { s.notYet(w) }
func (s *Server) getEndpoint(w http.ResponseWriter, r *http.Request)    { s.notYet(w) }
func (s *Server) updateEndpoint(w http.ResponseWriter, r *http.Request) { s.notYet(w) }
func (s *Server) deleteEndpoint(w http.ResponseWriter, r *http.Request) { s.notYet(w) }
func (s *Server) rotateSecret(w http.ResponseWriter, r *http.Request)   { s.notYet(w) }

func (s *Server) notYet(w http.ResponseWriter) {
	writeError(w, http.StatusNotImplemented, "not_implemented", "", "not implemented yet")
}
