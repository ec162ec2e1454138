"""Pattern tables and limits of the verifier: factor phrases, protected bases, promises, hedging, blame,
internal terms, decision wording, citations, figures and the plain words any notice may use."""
from __future__ import annotations

import re


# Phrases that show a factor is being presented, per reason code (catalog statements are added too).
REASON_PATTERNS: dict[str, tuple[str, ...]] = {
    "DEBT_TO_INCOME": (r"debt[- ]to[- ]income", r"obligations (?:that are )?(?:high |large )?(?:in relation|compared) (?:to|with) (?:your )?income"),
    "HOUSING_EXPENSE_TO_INCOME": (r"housing[- ]expense", r"housing costs?"),
    "LOAN_TO_VALUE": (r"loan[- ]to[- ](?:value|price)", r"value of (?:the )?(?:collateral|property)",
                      r"price of the item financed"),
    "CONSUMER_CREDIT_HISTORY": (r"consumer credit (?:history|payment|accounts?)", r"credit obligations with others",
                                r"limited credit experience: insufficient consumer"),
    "MORTGAGE_PAYMENT_HISTORY": (r"mortgage (?:credit|payment) history", r"late (?:payments on (?:past or present )?)?mortgage"),
    "PUBLIC_RECORD": (r"public record", r"bankruptcy", r"derogatory (?:credit )?record", r"public bad credit"),
    "MORTGAGE_INSURANCE_DENIED": (r"mortgage insurance",),
    "SELF_EMPLOYMENT": (r"self[- ]employ\w*", r"type of (?:your )?employment"),
    "PROPERTY_TYPE": (r"condominium", r"type of collateral"),
    "LENGTH_OF_EMPLOYMENT": (r"length of (?:your )?employment", r"(?:years?|time) with your (?:current )?employer"),
    "RESIDENCE_STATUS": (r"type of residence", r"housing status", r"housing type", r"type of housing"),
    "LOAN_TERM": (r"loan term", r"term of the loan", r"repayment term"),
    "HOUSEHOLD_EXPENSES": (r"household expenses", r"monthly expenses"),
    "INCOME_INSUFFICIENT": (r"monthly income", r"stated income", r"income (?:is )?insufficient",
                            r"stated monthly income"),
    "ASSETS": (r"\bassets\b",),
    "EXISTING_DEBT": (r"existing debt", r"outstanding debt", r"debt information"),
    "AMOUNT_REQUESTED": (r"size of the loan", r"amount of credit requested", r"loan amount"),
}
# Protected bases of 12 CFR 1002.2(z) and 1002.6(b), their direct words and the indirect ways texts name them.
PROTECTED_PATTERNS = (
    r"\brace\b", r"\bracial", r"\bcolou?r\b", r"\breligio", r"\bchurch", r"\bmosque", r"\bsynagogue", r"\bfaith\b",
    r"national origin", r"\bethnic", r"\bimmigra", r"\bcitizenship", r"\bforeign", r"\baccent\b", r"\bnative\b",
    r"\bsex\b", r"\bgender", r"\bfemale", r"\bmale\b", r"\bwom[ae]n\b", r"\bman\b", r"\bmen\b", r"\bmother",
    r"\bfather", r"\bhusband", r"\bwife\b", r"marital", r"\bmarried", r"\bunmarried", r"\bsingle\b", r"\bdivorc",
    r"\bwidow", r"\bspouse", r"\bpartner\b", r"\bage\b", r"\baged\b", r"years old", r"\belderly", r"\bsenior",
    r"\byoung", r"\bolder\b", r"\bretire", r"stage of (?:your )?life", r"\bgeneration", r"public assistance",
    r"\bwelfare\b", r"food stamps", r"\bbenefits\b", r"\bpregnan", r"childbear", r"\bchild", r"\bkids?\b",
    r"growing family", r"family size", r"start(?:ing)? a family", r"\bmaternity", r"\bdisab", r"\bhandicap",
    r"african", r"\bblack\b", r"\bwhite\b", r"\basian", r"hispanic", r"\blatin[oa]", r"\bneighbou?rhood",
    r"zip code", r"postal code", r"your area\b", r"where you live", r"your community", r"\beducation",
    r"high school", r"telephone listing", r"phone listing", r"part-time income", r"\balimony", r"child support",
    r"consumer credit protection act",
)
# Promises: never in a notice, neither in the explanation nor in the notice's own wording.
FORBIDDEN_PATTERNS = (
    r"re-?apply", r"apply again", r"guarantee", r"pre-?approved", r"reconsider", r"promise", r"\bassured\b",
    r"will (?:surely |certainly |then |likely )?(?:be approved|qualify|get approved)", r"you will be approved",
    r"approval is assured",
)
# Counterfactuals and advice: an explanation states reasons; it does not predict or coach another decision.
COUNTERFACTUAL_PATTERNS = (
    r"would (?:have )?(?:been )?approved", r"would (?:then )?qualify", r"could (?:have )?(?:been )?approved",
    r"\bqualify\b", r"\beligible\b", r"\bif you\b", r"\bhad you\b", r"\bwere you to\b", r"\bonce you\b",
    r"\bas soon as\b", r"next time", r"in the future", r"\bpay (?:down|off)\b", r"you should",
    r"\bwe (?:recommend|suggest|advise|encourage)", r"\bconsider (?:paying|reducing|improving|lowering|raising)",
    r"\bimprov", r"\btry (?:again|to)\b", r"your chances", r"\bwould have\b", r"you will\b", r"\bunless\b",
)
HEDGING_PATTERNS = (
    r"\bmay\b", r"\bmight\b", r"\bpossibl", r"\bperhaps\b", r"\blikely\b", r"\bprobabl", r"\bcould have\b",
    r"\bseems?\b", r"\bappears? to\b", r"\bwe (?:think|believe|feel|suspect)\b", r"\bsomewhat\b", r"\bmaybe\b",
    r"\bpresumably\b", r"\bit is possible\b", r"\bto some extent\b", r"\bsort of\b", r"\bkind of\b",
)
BLAME_AND_SALES_PATTERNS = (
    r"your fault", r"\birresponsib", r"\bcareless", r"\breckless", r"poor choices", r"\bmismanag", r"should have",
    r"\byou failed\b", r"\blazy\b", r"bad with money", r"special offer", r"limited time", r"\bcall\b", r"act now",
    r"\bupgrade", r"\bpremium\b", r"\bexclusive\b", r"don'?t miss", r"sign up", r"credit repair", r"fix (?:your|this)",
    r"\btoday\b", r"\boffer\b", r"\bdeal\b", r"\bvisit\b", r"www\.", r"https?:", r"\b1-\d{3}-\d{3}-\d{4}\b",
    r"\(\d{3}\)\s*\d{3}", r"\b\d{3}-\d{3}-\d{4}\b", r"\bhurry\b", r"\bbonus\b", r"\bdiscount",
)
# Names of the system's own parts: never in anything the applicant reads.
MODEL_NAME_PATTERNS = (r"\blora\b", r"adapter", r"smollm", r"granite", r"xgboost", r"\bshap\b", r"log-?odds",
                       r"treeshap", r"machine learning", r"\balgorithm", r"lendsafe")
INTERNAL_PATTERNS = (r"threshold", r"cut-?off", r"\bscore", r"probabilit", r"\brisk\b", r"\bmodel\b",
                     r"contribution", r"\bai\b", *MODEL_NAME_PATTERNS)
# What no applicant-facing sentence outside the explanation may contain (the educational section, for one).
APPLICANT_PATTERNS = (FORBIDDEN_PATTERNS + PROTECTED_PATTERNS + INTERNAL_PATTERNS + HEDGING_PATTERNS
                      + BLAME_AND_SALES_PATTERNS)
DENIAL_PATTERNS = (r"cannot approve", r"can ?not approve", r"unable to approve", r"not (?:been )?approved",
                   r"not to approve", r"not able to approve",
                   r"\bdenied\b", r"\bdecline", r"\bdeny\b", r"could not approve")
APPROVAL_PATTERNS = (r"pleased to approve", r"\bapproved\b", r"approve your")
# Sample forms and commentary show what a notice may look like; they are not what requires it.
LEGAL_BASIS_PATTERNS = (r"\bApp(?:\.|endix)\s*C\b", r"\bForm\s*C-\d", r"\bSupp(?:\.|lement)\s*I\b",
                        r"\bcomment\s+\d+\(", r"official interpretation", r"\bas required by\b")
CITATION_RE = re.compile(
    r"(?:12|15)\s+(?:CFR|C\.F\.R\.|U\.S\.C\.|USC)\s+§*\s*\d+(?:\.\d+[a-z]?)?(?:\([a-zA-Z0-9]+\))*"
    r"(?:,\s*(?:App\.|Appendix|Supp\.|Supplement)\s*[A-Z]*\b(?:,\s*(?:Form\s*C-\d+|comment\s*[\w()]+-\d+))?)?"
    r"|comment\s+\d+\([a-z]\)(?:\(\d+\))*-\d+|§+\s*\d+(?:\.\d+)?(?:\([a-z0-9]+\))*",
    re.IGNORECASE)
NUMBER_RE = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?%?")
LIMITS = {"deny": (25, 300), "approve": (8, 120)}
MAX_SENTENCE_WORDS = 50
MAX_MEAN_SENTENCE_WORDS = 32
UNFINISHED_ENDINGS = {"app", "supp", "no", "form", "comment", "cfr", "u.s.c", "usc", "by", "to", "of", "the", "a",
                      "an", "and", "or", "with", "for", "in", "on", "as", "is", "are", "your", "our", "e.g", "i.e",
                      "etc", "which", "that", "because", "than"}
MONEY_RELATIVE_TOLERANCE = 0.005     # "$245,000" for 244,900: rounded to the figure's own precision

# Words any notice paragraph may use: function words, the framing of a decision, ordering, plain links.
CONNECTIVE_WORDS = frozenset("""
a an the this that these those it its is are was were be been being has have had do does did not no
of in on at to for from by with as and or but than then so also both each all any other others
we our us you your yours their there here which who whom whose what when where why how
because due since given while whereas although though after before about against between into over under
most more least less main key chief primary principal first second third fourth last final next further
another additional additionally reason reasons factor factors important importance order listed list below
above following follows follow decision decided decide application applied applying apply request requested
cannot can could unable able approve approved approval deny denied decline declined declining credit
mortgage loan weighed weigh weighs counted count led lead leads contributed contribute contributes played
role part considered consider review reviewed reviewing explain explanation notice paragraph
pleased terms described document documents accompany accompanying letter thank
right rights dispute disputing inaccurate incomplete information report reporting contact question questions
regarding concerning relating related about shows show showed shown means mean meant indicates indicate
record records recorded recording level levels high higher too much many large larger very excessive
compared comparison relation relative relatively ratio value figure figures amount amounts total
sufficient sufficiently insufficient little less low lower limited short shorter long longer small smaller
stated state states provided provide absence absent missing given give gave
one two three four it law federal under act provides
""".split())
