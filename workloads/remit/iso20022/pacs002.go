package iso20022

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"time"

	"github.com/finvirt/finvirt/workloads/remit/ledger"
)

// Pacs002NS is the namespace of the status report remit sends.
const Pacs002NS = "urn:iso:std:iso:20022:tech:xsd:pacs.002.001.10"

type statusDoc struct {
	XMLName xml.Name `xml:"Document"`
	NS      string   `xml:"xmlns,attr"`
	Rpt     struct {
		GrpHdr struct {
			MsgId   string `xml:"MsgId"`
			CreDtTm string `xml:"CreDtTm"`
		} `xml:"GrpHdr"`
		Grp struct {
			OrgnlMsgId   string      `xml:"OrgnlMsgId"`
			OrgnlMsgNmId string      `xml:"OrgnlMsgNmId"`
			OrgnlNbOfTxs string      `xml:"OrgnlNbOfTxs,omitempty"`
			GrpSts       string      `xml:"GrpSts"`
			StsRsnInf    *StatusInfo `xml:"StsRsnInf,omitempty"`
		} `xml:"OrgnlGrpInfAndSts"`
		Txs []TxStatus `xml:"TxInfAndSts"`
	} `xml:"FIToFIPmtStsRpt"`
}

// StatusInfo is StsRsnInf.
type StatusInfo struct {
	Cd       string `xml:"Rsn>Cd"`
	AddtlInf string `xml:"AddtlInf,omitempty"`
}

// TxStatus is one TxInfAndSts.
type TxStatus struct {
	OrgnlInstrId    string      `xml:"OrgnlInstrId,omitempty"`
	OrgnlEndToEndId string      `xml:"OrgnlEndToEndId,omitempty"`
	OrgnlUETR       string      `xml:"OrgnlUETR,omitempty"`
	TxSts           string      `xml:"TxSts"`
	StsRsnInf       *StatusInfo `xml:"StsRsnInf,omitempty"`
}

// Report is what the handler fills in to produce a pacs.002.
type Report struct {
	OrgnlMsgId   string
	OrgnlNbOfTxs string
	GrpSts       string      // ACSC or RJCT
	GrpReason    *StatusInfo // message-level rejection
	Txs          []TxStatus
	Now          time.Time
}

// Encode renders the pacs.002. Its MsgId derives from the original MsgId so
// a resent pacs.008 gets the same report id.
func (r *Report) Encode() ([]byte, error) {
	var d statusDoc
	d.NS = Pacs002NS
	sum := sha256.Sum256([]byte(r.OrgnlMsgId))
	d.Rpt.GrpHdr.MsgId = "RMT" + hex.EncodeToString(sum[:16])
	d.Rpt.GrpHdr.CreDtTm = r.Now.UTC().Format("2006-01-02T15:04:05.000Z")
	d.Rpt.Grp.OrgnlMsgId = r.OrgnlMsgId
	d.Rpt.Grp.OrgnlMsgNmId = "pacs.008.001.08"
	d.Rpt.Grp.OrgnlNbOfTxs = r.OrgnlNbOfTxs
	d.Rpt.Grp.GrpSts = r.GrpSts
	d.Rpt.Grp.StsRsnInf = r.GrpReason
	d.Rpt.Txs = r.Txs
	out, err := xml.MarshalIndent(&d, "", " ")
	if err != nil {
		return nil, err
	}
	return append([]byte(xml.Header), append(out, '\n')...), nil
}

// ReasonFor maps a ledger rejection onto an ISO 20022 status reason code.
func ReasonFor(c ledger.Code) string {
	switch c {
	case ledger.DebitAccountNotFound, ledger.CreditAccountNotFound, ledger.AccountsMustBeDifferent, ledger.InvalidID:
		return "AC01" // IncorrectAccountNumber
	case ledger.ExceedsCredits, ledger.ExceedsDebits:
		return "AM04" // InsufficientFunds
	case ledger.CurrencyMismatch, ledger.InvalidCurrency:
		return "AM03" // NotAllowedCurrency
	case ledger.InvalidAmount:
		return "AM01" // ZeroAmount
	case ledger.Overflow:
		return "AM02" // NotAllowedAmount
	case ledger.ExistsWithDifferentAmount, ledger.ExistsWithDifferentCreditAccountID, ledger.ExistsWithDifferentDebitAccountID,
		ledger.ExistsWithDifferentCurrency, ledger.ExistsWithDifferentPending, ledger.ExistsWithDifferentTimeout:
		return "DU05" // DuplicateInstructionID: the UETR was already used for a different payment
	case ledger.LinkedEventFailed:
		return "NARR"
	}
	return "FF01"
}
