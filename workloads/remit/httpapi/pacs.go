package httpapi

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/finvirt/finvirt/workloads/remit/engine"
	"github.com/finvirt/finvirt/workloads/remit/iso20022"
	"github.com/finvirt/finvirt/workloads/remit/ledger"
)

// pacs008 applies all transactions of a pacs.008 as ONE linked batch (never
// a partial posting) and answers with a pacs.002. Transfer ids come from the
// UETR (or MsgId:EndToEndId), so a resent message is idempotent.
func (s *Server) pacs008(w http.ResponseWriter, r *http.Request) {
	ct := r.Header.Get("Content-Type")
	if ct != "" && !strings.Contains(ct, "xml") {
		writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "pacs.008 must be sent as Content-Type application/xml")
		return
	}
	rep := iso20022.Report{Now: time.Now()}
	p, err := iso20022.Decode(http.MaxBytesReader(w, r.Body, MaxXMLBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", "pacs.008 body exceeds 4 MiB; split it into several messages")
			return
		}
		var fe *iso20022.FormatError
		if !errors.As(err, &fe) {
			writeError(w, http.StatusBadRequest, "invalid_xml", "reading pacs.008: "+err.Error())
			return
		}
		rep.OrgnlMsgId, rep.GrpSts = "NOTPROVIDED", "RJCT"
		rep.GrpReason = &iso20022.StatusInfo{Cd: "FF01", AddtlInf: truncate(fe.Msg, 105)}
		s.writePacs002(w, &rep)
		return
	}
	rep.OrgnlMsgId, rep.OrgnlNbOfTxs = p.MsgId, p.NbOfTxs
	rep.Txs = make([]iso20022.TxStatus, len(p.Txs))
	bad := -1
	for i := range p.Txs {
		t := &p.Txs[i]
		rep.Txs[i] = iso20022.TxStatus{OrgnlInstrId: t.InstrId, OrgnlEndToEndId: t.EndToEndId, OrgnlUETR: t.UETR, TxSts: "ACSC"}
		if t.Reason != "" && bad < 0 {
			bad = i
		}
	}
	var codes []ledger.Code
	if bad < 0 {
		req := &engine.Request{Op: engine.OpCreateTransfers, Linked: true, Transfers: make([]ledger.TransferInput, len(p.Txs))}
		for i := range p.Txs {
			req.Transfers[i] = p.Txs[i].Transfer
		}
		if !s.do(w, req) {
			return
		}
		codes = req.Codes
	}
	for i := range p.Txs {
		switch {
		case bad >= 0 && i == bad:
			rep.Txs[i].StsRsnInf = &iso20022.StatusInfo{Cd: p.Txs[i].Reason, AddtlInf: truncate(p.Txs[i].Info, 105)}
		case bad >= 0:
			rep.Txs[i].StsRsnInf = &iso20022.StatusInfo{Cd: "NARR", AddtlInf: "not settled: another transaction of this message is invalid (all or none)"}
		case codes[i].Success():
			continue
		default:
			cd := iso20022.ReasonFor(codes[i])
			info := codes[i].Message(p.Txs[i].Transfer.ID)
			if codes[i] == ledger.LinkedEventFailed {
				info = "not settled: another transaction of this message was rejected (all or none)"
			}
			rep.Txs[i].StsRsnInf = &iso20022.StatusInfo{Cd: cd, AddtlInf: truncate(info, 105)}
		}
		rep.Txs[i].TxSts = "RJCT"
	}
	rep.GrpSts = "ACSC"
	for _, t := range rep.Txs {
		if t.TxSts == "RJCT" {
			rep.GrpSts = "RJCT"
		}
	}
	s.writePacs002(w, &rep)
}

func (s *Server) writePacs002(w http.ResponseWriter, rep *iso20022.Report) {
	out, err := rep.Encode()
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", "encoding pacs.002: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	w.Write(out)
}

// truncate keeps AddtlInf within ISO's Max105Text.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
