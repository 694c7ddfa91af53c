// Package iso20022 decodes the pacs.008 (FIToFICustomerCreditTransfer)
// subset remit accepts and encodes the pacs.002 (FIToFIPaymentStatusReport)
// it answers with. encoding/xml matches elements by local name, so the
// message namespace version is checked explicitly instead.
package iso20022

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/finvirt/finvirt/workloads/remit/ledger"
)

// MaxTxs bounds the transactions of one message (all are applied as one linked batch).
const MaxTxs = 1000

// Pacs008NS is the namespace of the accepted message version.
const Pacs008NS = "urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08"

// Document is the pacs.008 subset.
type Document struct {
	XMLName xml.Name `xml:"Document"`
	Msg     *struct {
		GrpHdr struct {
			MsgId    string `xml:"MsgId"`
			CreDtTm  string `xml:"CreDtTm"`
			NbOfTxs  string `xml:"NbOfTxs"`
			SttlmInf struct {
				SttlmMtd string `xml:"SttlmMtd"`
			} `xml:"SttlmInf"`
		} `xml:"GrpHdr"`
		Txs []Tx `xml:"CdtTrfTxInf"`
	} `xml:"FIToFICstmrCdtTrf"`
}

// Tx is one CdtTrfTxInf.
type Tx struct {
	PmtId struct {
		InstrId    string `xml:"InstrId"`
		EndToEndId string `xml:"EndToEndId"`
		TxId       string `xml:"TxId"`
		UETR       string `xml:"UETR"`
	} `xml:"PmtId"`
	Amt struct {
		Ccy   string `xml:"Ccy,attr"`
		Value string `xml:",chardata"`
	} `xml:"IntrBkSttlmAmt"`
	DbtrAcct Acct `xml:"DbtrAcct"`
	CdtrAcct Acct `xml:"CdtrAcct"`
}

// Acct is a CashAccount: Id/IBAN or Id/Othr/Id.
type Acct struct {
	Id struct {
		IBAN string `xml:"IBAN"`
		Othr struct {
			Id string `xml:"Id"`
		} `xml:"Othr"`
	} `xml:"Id"`
}

// ID is the account identification remit uses as the ledger account id.
func (a *Acct) ID() string {
	if s := strings.TrimSpace(a.Id.IBAN); s != "" {
		return s
	}
	return strings.TrimSpace(a.Id.Othr.Id)
}

// FormatError is a message-level defect (GrpSts RJCT, reason FF01).
type FormatError struct{ Msg string }

func (e *FormatError) Error() string { return e.Msg }

func formatErr(f string, a ...any) error { return &FormatError{Msg: fmt.Sprintf(f, a...)} }

// Parsed is a decoded, validated message.
type Parsed struct {
	MsgId   string
	NbOfTxs string
	Txs     []ParsedTx
}

// ParsedTx is one transaction mapped onto a ledger transfer. Reason is set
// when the transaction itself is malformed (it then must not be applied).
type ParsedTx struct {
	InstrId, EndToEndId, UETR string
	Transfer                  ledger.TransferInput
	Reason                    string // ISO reason code, "" when well-formed
	Info                      string
}

// Decode reads and validates a pacs.008. A *FormatError means the whole
// message is rejected; per-transaction defects are in ParsedTx.Reason.
func Decode(r io.Reader) (*Parsed, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if err := checkNamespace(data); err != nil {
		return nil, err
	}
	var doc Document
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = true
	if err := dec.Decode(&doc); err != nil {
		return nil, formatErr("pacs.008 is not well-formed XML: %v; send one Document element", err)
	}
	if doc.Msg == nil {
		return nil, formatErr("pacs.008 Document lacks FIToFICstmrCdtTrf; send a pacs.008.001.08 message")
	}
	h := &doc.Msg.GrpHdr
	p := &Parsed{MsgId: strings.TrimSpace(h.MsgId), NbOfTxs: strings.TrimSpace(h.NbOfTxs)}
	switch {
	case p.MsgId == "" || len(p.MsgId) > 35:
		return nil, formatErr("GrpHdr/MsgId must be 1-35 characters")
	case !validDateTime(strings.TrimSpace(h.CreDtTm)):
		return nil, formatErr("GrpHdr/CreDtTm %q is not an ISO 8601 date-time such as 2026-12-02T05:00:00Z", h.CreDtTm)
	case strings.TrimSpace(h.SttlmInf.SttlmMtd) == "":
		return nil, formatErr("GrpHdr/SttlmInf/SttlmMtd is required (e.g. CLRG)")
	case len(doc.Msg.Txs) == 0:
		return nil, formatErr("pacs.008 holds no CdtTrfTxInf")
	case len(doc.Msg.Txs) > MaxTxs:
		return nil, formatErr("pacs.008 holds %d transactions; at most %d per message", len(doc.Msg.Txs), MaxTxs)
	case p.NbOfTxs != fmt.Sprint(len(doc.Msg.Txs)):
		return nil, formatErr("GrpHdr/NbOfTxs is %q but the message holds %d CdtTrfTxInf", h.NbOfTxs, len(doc.Msg.Txs))
	}
	seen := map[string]bool{}
	for i := range doc.Msg.Txs {
		tx := &doc.Msg.Txs[i]
		pt := ParsedTx{InstrId: strings.TrimSpace(tx.PmtId.InstrId), EndToEndId: strings.TrimSpace(tx.PmtId.EndToEndId), UETR: strings.ToLower(strings.TrimSpace(tx.PmtId.UETR))}
		pt.Transfer = ledger.TransferInput{DebitID: tx.DbtrAcct.ID(), CreditID: tx.CdtrAcct.ID(), Currency: strings.TrimSpace(tx.Amt.Ccy)}
		pt.Transfer.ID = transferID(p.MsgId, &pt)
		amt, code, info := ParseAmount(strings.TrimSpace(tx.Amt.Value), pt.Transfer.Currency)
		pt.Transfer.Amount = amt
		switch {
		case pt.EndToEndId == "" || len(pt.EndToEndId) > 35:
			pt.Reason, pt.Info = "FF01", "PmtId/EndToEndId must be 1-35 characters"
		case pt.UETR != "" && !validUETR(pt.UETR):
			pt.Reason, pt.Info = "FF01", "PmtId/UETR must be a UUID such as 8a562c67-ca16-48ba-b074-65581be6f011"
		case code != "":
			pt.Reason, pt.Info = code, info
		case pt.Transfer.DebitID == "" || pt.Transfer.CreditID == "":
			pt.Reason, pt.Info = "AC01", "DbtrAcct/Id and CdtrAcct/Id need an IBAN or Othr/Id"
		case !ledger.ValidID(pt.Transfer.DebitID) || !ledger.ValidID(pt.Transfer.CreditID):
			pt.Reason, pt.Info = "AC01", "account identification is not a known account (1-64 chars of A-Za-z0-9._:-)"
		case seen[pt.Transfer.ID]:
			pt.Reason, pt.Info = "DU02", "the same UETR/EndToEndId appears twice in this message"
		}
		seen[pt.Transfer.ID] = true
		p.Txs = append(p.Txs, pt)
	}
	return p, nil
}

// checkNamespace rejects other message types or versions that would
// otherwise decode by local name.
func checkNamespace(data []byte) error {
	dec := xml.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := dec.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return formatErr("pacs.008 has no root element (empty or not XML); send a Document element")
			}
			return formatErr("pacs.008 is not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Local != "Document" || (se.Name.Space != "" && se.Name.Space != Pacs008NS) {
				return formatErr("root element is {%s}%s; send a Document in namespace %s", se.Name.Space, se.Name.Local, Pacs008NS)
			}
			return nil
		}
	}
}

func validDateTime(s string) bool {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04:05.999999999"} {
		if _, err := time.Parse(layout, s); err == nil {
			return true
		}
	}
	return false
}

func validUETR(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
		} else if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// transferID is the UETR (globally unique by design) or, without one,
// MsgId:EndToEndId, hashed when it does not fit the ledger's id syntax.
func transferID(msgID string, t *ParsedTx) string {
	if validUETR(t.UETR) {
		return t.UETR
	}
	id := msgID + ":" + t.EndToEndId
	if ledger.ValidID(id) {
		return id
	}
	sum := sha256.Sum256([]byte(msgID + "\x00" + t.EndToEndId))
	return "p8-" + hex.EncodeToString(sum[:20])
}
