from marketplace.billing.models.events import StripeEvent
from marketplace.billing.models.ledger import AccountKind, EntryKind, JournalEntry, JournalLine, LedgerAccount
from marketplace.billing.models.payments import (
    CustomerBilling,
    OperationKind,
    OrderCharge,
    OrderRefund,
    PaymentMethodKind,
    PaymentOperation,
    TopUp,
)
from marketplace.billing.models.payouts import ProviderPayoutAccount, ProviderTransfer

__all__ = [
    "AccountKind", "CustomerBilling", "EntryKind", "JournalEntry", "JournalLine", "LedgerAccount", "OperationKind",
    "OrderCharge", "OrderRefund", "PaymentMethodKind", "PaymentOperation", "ProviderPayoutAccount",
    "ProviderTransfer", "StripeEvent", "TopUp",
]
