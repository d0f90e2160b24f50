package main

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// apiRoutes is the API: each route names the operation it runs and who
// may run it. openapi.json documents exactly these (TestOpenAPIMatchesRoutes).
func apiRoutes() []apiRoute {
	all := []string{rolePortal, roleOperator, roleAuditor}
	writers := []string{rolePortal, roleOperator}
	readers := []string{roleOperator, roleAuditor}
	addr := func(r *http.Request, _ *apiCaller, _ []byte) (any, error) {
		return addressArgs{Address: r.PathValue("address")}, nil
	}
	return []apiRoute{
		{method: "POST", path: "/v1/accounts", roles: writers, op: "user.add", status: http.StatusCreated, creates: true,
			args: func(r *http.Request, c *apiCaller, body []byte) (any, error) {
				var in struct {
					Address  string `json:"address"`
					Phone    string `json:"phone"`
					Class    string `json:"class"`
					Password string `json:"password"`
				}
				if err := decodeJSON(body, &in); err != nil {
					return nil, err
				}
				if in.Class != "" && c.tok.Role != roleOperator {
					return nil, forbidden("only an operator token chooses the class")
				}
				return userAddArgs(in), nil
			}},
		{method: "GET", path: "/v1/accounts", roles: readers, op: "user.list",
			args: func(r *http.Request, _ *apiCaller, _ []byte) (any, error) {
				q := r.URL.Query()
				a := userListArgs{State: q.Get("state")}
				var err error
				if v := q.Get("after"); v != "" {
					if a.After, err = strconv.ParseUint(v, 10, 64); err != nil {
						return nil, fmt.Errorf("after: not a number")
					}
				}
				if v := q.Get("limit"); v != "" {
					if a.Limit, err = strconv.Atoi(v); err != nil {
						return nil, fmt.Errorf("limit: not a number")
					}
				}
				return a, nil
			}},
		{method: "GET", path: "/v1/accounts/{address}", roles: all, op: "user.show", args: addr},
		{method: "PATCH", path: "/v1/accounts/{address}", roles: writers, op: "user.set",
			args: func(r *http.Request, c *apiCaller, body []byte) (any, error) {
				var in struct {
					Phone         *string `json:"phone"`
					Class         *string `json:"class"`
					QuotaStorage  *string `json:"quota_storage"`
					QuotaMessages *string `json:"quota_messages"`
					Exempt        *bool   `json:"exempt"`
					BanServices   *string `json:"ban_services"`
				}
				if err := decodeJSON(body, &in); err != nil {
					return nil, err
				}
				if c.tok.Role != roleOperator && (in.Class != nil || in.QuotaStorage != nil || in.QuotaMessages != nil || in.Exempt != nil || in.BanServices != nil) {
					return nil, forbidden("a portal token changes only the phone; class, quotas, exemption and bans are the operator's")
				}
				return userSetArgs{Address: r.PathValue("address"), Phone: in.Phone, Class: in.Class, QuotaStorage: in.QuotaStorage,
					QuotaMessages: in.QuotaMessages, Exempt: in.Exempt, BanServices: in.BanServices}, nil
			}},
		{method: "PUT", path: "/v1/accounts/{address}/password", roles: writers, op: "user.passwd",
			args: func(r *http.Request, _ *apiCaller, body []byte) (any, error) {
				var in struct {
					Password string `json:"password"`
				}
				if err := decodeJSON(body, &in); err != nil {
					return nil, err
				}
				return passwdArgs{Address: r.PathValue("address"), Password: in.Password}, nil
			}},
		{method: "POST", path: "/v1/accounts/{address}/block", roles: []string{roleOperator}, op: "user.block",
			args: func(r *http.Request, _ *apiCaller, body []byte) (any, error) {
				var in struct {
					Reason string `json:"reason"`
				}
				if err := decodeJSON(body, &in); err != nil {
					return nil, err
				}
				if in.Reason == "" {
					return nil, fmt.Errorf("a reason is required")
				}
				return blockArgs{Address: r.PathValue("address"), Reason: in.Reason}, nil
			}},
		{method: "POST", path: "/v1/accounts/{address}/unblock", roles: []string{roleOperator}, op: "user.unblock", args: addr},
		{method: "DELETE", path: "/v1/accounts/{address}", roles: writers, op: "user.delete", args: addr},
		{method: "POST", path: "/v1/accounts/{address}/restore", roles: writers, op: "user.restore", args: addr},
		{method: "GET", path: "/v1/accounts/{address}/consent", roles: all, op: "user.consent.export", args: addr},
		{method: "PUT", path: "/v1/accounts/{address}/consent", roles: writers, op: "user.consent",
			args: func(r *http.Request, c *apiCaller, body []byte) (any, error) {
				var in struct {
					CMS      string `json:"cms"`     // base64 DER (or PEM text, base64'd)
					Content  string `json:"content"` // base64 statement of a detached signature
					ShareIIN bool   `json:"share_iin"`
				}
				if err := decodeJSON(body, &in); err != nil {
					return nil, err
				}
				if in.ShareIIN && c.tok.Role != roleOperator {
					return nil, forbidden("only an operator token lets two accounts share an IIN")
				}
				a := consentArgs{Address: r.PathValue("address"), ShareIIN: in.ShareIIN}
				var err error
				if a.CMS, err = base64.StdEncoding.DecodeString(in.CMS); err != nil || len(a.CMS) == 0 {
					return nil, fmt.Errorf("cms: the signed consent, base64")
				}
				if in.Content != "" {
					if a.Content, err = base64.StdEncoding.DecodeString(in.Content); err != nil {
						return nil, fmt.Errorf("content: not base64")
					}
				}
				return a, nil
			}},
		{method: "DELETE", path: "/v1/accounts/{address}/consent", roles: writers, op: "user.consent",
			args: func(r *http.Request, _ *apiCaller, _ []byte) (any, error) {
				return consentArgs{Address: r.PathValue("address"), Revoke: true}, nil
			}},
		{method: "GET", path: "/v1/accounts/{address}/logins", roles: all, op: "user.logins",
			args: func(r *http.Request, _ *apiCaller, _ []byte) (any, error) {
				a := userLoginsArgs{Address: r.PathValue("address")}
				if v := r.URL.Query().Get("limit"); v != "" {
					n, err := strconv.Atoi(v)
					if err != nil {
						return nil, fmt.Errorf("limit: not a number")
					}
					a.Limit = n
				}
				return a, nil
			}},
		{method: "GET", path: "/v1/accounts/{address}/letters", roles: all, op: "user.letters", args: addr},
		{method: "GET", path: "/v1/accounts/{address}/app-passwords", roles: all, op: "user.app-password.list", args: addr},
		{method: "POST", path: "/v1/accounts/{address}/app-passwords", roles: writers, op: "user.app-password.add", status: http.StatusCreated,
			args: func(r *http.Request, _ *apiCaller, body []byte) (any, error) {
				var in struct {
					Name  string `json:"name"`
					Scope string `json:"scope"`
				}
				if err := decodeJSON(body, &in); err != nil {
					return nil, err
				}
				return appPasswordArgs{Address: r.PathValue("address"), Name: in.Name, Scope: in.Scope}, nil
			}},
		{method: "DELETE", path: "/v1/accounts/{address}/app-passwords/{name}", roles: writers, op: "user.app-password.revoke",
			args: func(r *http.Request, _ *apiCaller, _ []byte) (any, error) {
				return appPasswordArgs{Address: r.PathValue("address"), Name: r.PathValue("name")}, nil
			}},
		{method: "GET", path: "/v1/accounts/{address}/export", roles: writers, run: apiExport},
		{method: "GET", path: "/v1/audit", roles: readers, op: "audit",
			args: func(r *http.Request, _ *apiCaller, _ []byte) (any, error) {
				q := r.URL.Query()
				a := auditArgs{Account: q.Get("account")}
				var err error
				if v := q.Get("since"); v != "" {
					if a.Since, err = time.Parse(time.RFC3339, v); err != nil {
						return nil, fmt.Errorf("since: an RFC 3339 time")
					}
				}
				if v := q.Get("after"); v != "" {
					if a.After, err = strconv.ParseUint(v, 10, 64); err != nil {
						return nil, fmt.Errorf("after: not a number")
					}
				}
				if v := q.Get("limit"); v != "" {
					if a.Limit, err = strconv.Atoi(v); err != nil {
						return nil, fmt.Errorf("limit: not a number")
					}
				}
				return a, nil
			}},
		{method: "GET", path: "/v1/classes", roles: all, op: "class.list",
			args: func(*http.Request, *apiCaller, []byte) (any, error) { return struct{}{}, nil }},
	}
}
