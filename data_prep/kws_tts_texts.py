"""Text material of the TTS keyword-spotting benchmark (:mod:`data_prep.make_kws_tts`).

Each keyword has carrier clauses ``(before, after)`` that put it in a sentence, and near-word
clauses: phrases with an acoustically similar word ("mouse" for *house*, "nice" for *night*) or
a word that contains the keyword ("houses", "dollars"). Near-words are never annotated: a
detector that fires on them makes a false alarm. Exact homophones ("knight", "cache",
"mourning") are left out on purpose: no acoustic detector can reject them.

The first ``N`` keywords of :data:`KEYWORDS` are used by ``--keywords N``; the order mixes
lengths so that a small ``N`` still has a two-word keyword and a long one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from data_prep.make_demo import FILLER_SENTENCES

__all__ = [
    "CONNECTIVES",
    "KEEP_CAPITAL",
    "KEYWORDS",
    "LEAD_INS",
    "NEUTRAL_CLAUSES",
    "Keyword",
    "NearClause",
    "check_texts",
    "contains_keyword",
    "contains_near_word",
    "neutral_clauses",
]


@dataclass(frozen=True)
class NearClause:
    """A keyword-free phrase holding a near-word of a keyword.

    ``kind`` is ``"near"`` (sounds alike: mouse/house) or ``"contains"`` (the keyword is inside
    the word: houses/house, so a subsequence detector is expected to fire).
    """

    text: str
    word: str
    kind: str


@dataclass(frozen=True)
class Keyword:
    """A keyword: its label (= spoken text; spaces allowed), syllable count, carrier clauses
    ``(before, after)`` and near-word clauses."""

    label: str
    syllables: int
    clauses: tuple[tuple[str, str], ...]
    near: tuple[NearClause, ...]

    @property
    def folder(self) -> str:
        """Folder name of its shots (spaces become ``_``, as in the bundled demo)."""
        return self.label.replace(" ", "_")


def _near(kind: str, *pairs: tuple[str, str]) -> tuple[NearClause, ...]:
    return tuple(NearClause(text, word, kind) for text, word in pairs)


#: The 15 keywords. Fourteen are KWS-DailyTalk's; its "deposit" is replaced by "bank account" so
#: that there are two two-word keywords (1-4 syllables overall).
KEYWORDS: tuple[Keyword, ...] = (
    Keyword(
        "credit card",
        3,
        (
            ("Can I pay by", ""),
            ("My", "was declined again"),
            ("Please type the number of your", ""),
            ("She lost her", "on the train"),
            ("", "payments are due on Friday"),
            ("I forgot my", "at the restaurant"),
        ),
        _near("near", ("the credit is all yours", "credit"), ("I sent him a birthday card", "card"))
        + _near("near", ("she discarded the old phone", "discarded")),
    ),
    Keyword(
        "cash",
        1,
        (
            ("Do you accept", ""),
            ("I would rather pay in", ""),
            ("He always carries some", "in his wallet"),
            ("", "is not accepted here"),
            ("I need to withdraw some", "from the machine"),
            ("We paid the driver in", ""),
        ),
        _near(
            "near",
            ("we had to catch the bus", "catch"),
            ("there was a car crash downtown", "crash"),
            ("the whole cast was great", "cast"),
        )
        + _near("contains", ("the cashier was very friendly", "cashier")),
    ),
    Keyword(
        "information",
        4,
        (
            ("I need more", "about the trip"),
            ("The", "desk is on the left"),
            ("Thank you for the", ""),
            ("Where can I find", "about the tour"),
            ("All the", "is on the website"),
            ("Could you send me some", ""),
        ),
        _near(
            "near",
            ("the birds flew in formation", "formation"),
            ("the inflammation went down", "inflammation"),
            ("we are still waiting for confirmation", "confirmation"),
        ),
    ),
    Keyword(
        "airport",
        2,
        (
            ("Could you drive me to the", ""),
            ("The bus to the", "leaves every hour"),
            ("I lost my luggage at the", ""),
            ("The new", "is far from the city"),
            ("We waited at the", "for two hours"),
            ("", "security was very slow"),
        ),
        _near(
            "near",
            ("I forgot my passport at home", "passport"),
            ("thank you for your support", "support"),
            ("the report is almost done", "report"),
            ("the airline lost my bag", "airline"),
        ),
    ),
    Keyword(
        "morning",
        2,
        (
            ("I go jogging every", ""),
            ("The meeting is early in the", ""),
            ("Good", "to you too"),
            ("", "is my favorite time of day"),
            ("See you tomorrow", ""),
            ("The shop opens at eight in the", ""),
        ),
        _near(
            "near",
            ("there was a warning on the radio", "warning"),
            ("the baby kept yawning", "yawning"),
            ("he was moaning about the rain", "moaning"),
        )
        + _near("contains", ("I work out most mornings", "mornings")),
    ),
    Keyword(
        "bank account",
        3,
        (
            ("I opened a new", "last week"),
            ("The salary goes straight to my", ""),
            ("", "fees are getting higher"),
            ("Do you have a", "with us"),
            ("Please check your", "online"),
            ("He closed his old", "yesterday"),
        ),
        _near(
            "near",
            ("we walked along the river bank", "bank"),
            ("her brother is an accountant", "accountant"),
            ("take the weather into account", "account"),
        ),
    ),
    Keyword(
        "night",
        1,
        (
            ("I could not sleep last", ""),
            ("The shop is open all", ""),
            ("We arrived late at", ""),
            ("Have a good", ""),
            ("The", "bus was full"),
            ("It rained the whole", ""),
        ),
        _near(
            "near",
            ("it was a nice and quiet day", "nice"),
            ("pass me the knife please", "knife"),
            ("we left at nine", "nine"),
            ("the kitchen light is broken", "light"),
        )
        + _near("contains", ("we stayed there for three nights", "nights")),
    ),
    Keyword(
        "expensive",
        3,
        (
            ("This hotel is too", ""),
            ("Everything here is so", ""),
            ("That was an", "dinner"),
            ("Taxis are", "in this town"),
            ("It is more", "than I thought"),
            ("The tickets were quite", ""),
        ),
        _near(
            "near",
            ("the damage was extensive", "extensive"),
            ("she has a very expressive face", "expressive"),
            ("the view from the hill was expansive", "expansive"),
        ),
    ),
    Keyword(
        "dollar",
        2,
        (
            ("It only costs one", ""),
            ("The exchange rate of the", "went up"),
            ("Can you lend me a", ""),
            ("The", "is stronger this year"),
            ("I found a", "bill on the street"),
            ("The coffee was one", "fifty"),
        ),
        _near(
            "near",
            ("the shirt has a blue collar", "collar"),
            ("we saw a dolphin near the boat", "dolphin"),
            ("please do not holler at me", "holler"),
        )
        + _near("contains", ("ten dollars should be enough", "dollars")),
    ),
    Keyword(
        "house",
        1,
        (
            ("We bought a small", "near the river"),
            ("Come over to my", "after work"),
            ("The", "was empty when we arrived"),
            ("They are painting the", "white"),
            ("Is this your", ""),
            ("Our", "has a big garden"),
        ),
        _near(
            "near",
            ("a mouse ran across the kitchen floor", "mouse"),
            ("the horse was standing in the field", "horse"),
            ("how's your brother doing", "how's"),
        )
        + _near("contains", ("the houses on this street are old", "houses")),
    ),
    Keyword(
        "evening",
        2,
        (
            ("We are having a party this", ""),
            ("Good", "everyone"),
            ("The concert starts in the", ""),
            ("", "flights are usually cheaper"),
            ("I will call you in the", ""),
            ("We spent a quiet", "at home"),
        ),
        _near(
            "near",
            ("the score is even now", "even"),
            ("she is leaving tomorrow", "leaving"),
            ("he was weaving a basket", "weaving"),
        )
        + _near("contains", ("the evenings are quiet here", "evenings")),
    ),
    Keyword(
        "visa",
        2,
        (
            ("Do I need a", "for this country"),
            ("My", "expires next month"),
            ("She applied for a student", ""),
            ("The", "office opens at ten"),
            ("Can I pay with", ""),
            ("His", "was approved on Tuesday"),
        ),
        _near(
            "near",
            ("Lisa is my best friend", "Lisa"),
            ("we ordered a pizza for lunch", "pizza"),
            ("he wore a visor in the sun", "visor"),
        ),
    ),
    Keyword(
        "money",
        2,
        (
            ("I don't have enough", ""),
            ("We need to save some", "for the trip"),
            ("", "doesn't grow on trees"),
            ("He spent all his", "on books"),
            ("Did you bring the", ""),
            ("She sent the", "last week"),
        ),
        _near(
            "near",
            ("we like honey with our tea", "honey"),
            ("see you on Monday", "Monday"),
            ("there were so many people", "many"),
            ("a monkey climbed the tree", "monkey"),
        ),
    ),
    Keyword(
        "afternoon",
        3,
        (
            ("Let's meet tomorrow", ""),
            ("The post office is closed in the", ""),
            ("I usually take a nap in the", ""),
            ("", "tea is served at four"),
            ("We spent the whole", "at the beach"),
            ("The package should arrive this", ""),
        ),
        _near(
            "near",
            ("we left right after lunch", "after"),
            ("the meeting is at noon", "noon"),
        )
        + _near("contains", ("I spend my afternoons reading", "afternoons")),
    ),
    Keyword(
        "yuan",
        1,
        (
            ("It costs fifty", ""),
            ("The", "is the currency of China"),
            ("How many", "is that"),
            ("I changed my euros into", ""),
            ("The price is one hundred", ""),
            ("The", "fell against the euro"),
        ),
        _near(
            "near",
            ("Juan is from Mexico", "Juan"),
            ("the old tower is in ruin", "ruin"),
            ("I will count on you on this one", "you on"),
        ),
    ),
)

#: Keyword-free clauses (besides the near-word clauses); the bundled demo's filler sentences
#: are added by :func:`neutral_clauses`.
NEUTRAL_CLAUSES: tuple[str, ...] = (
    "the weather was lovely",
    "the train was twenty minutes late",
    "we should book the tickets soon",
    "the hotel room was clean and quiet",
    "my phone battery is almost empty",
    "the waiter brought us the menu",
    "they are going to visit their parents",
    "the museum was full of tourists",
    "the children are playing in the garden",
    "he is learning to cook",
    "the printer is out of paper again",
    "our neighbors have a new dog",
    "the meeting was shorter than usual",
    "I left my umbrella on the bus",
    "she reads a book every week",
)

#: Optional openings of a sentence.
LEAD_INS: tuple[str, ...] = (
    "Honestly,",
    "By the way,",
    "I think",
    "You know,",
    "Well,",
    "My friend said that",
    "As far as I know,",
    "Excuse me,",
    "To be honest,",
    "Listen,",
)

#: Joins between two clauses of one sentence.
CONNECTIVES: tuple[str, ...] = (", and", ", but", "because", ", so", "and then", "although")

#: Words that keep their capital letter inside a sentence.
KEEP_CAPITAL = frozenset({"I", "I'm", "I'll", "Lisa", "Juan", "Monday", "Friday", "China"})


def contains_keyword(text: str, keywords: tuple[Keyword, ...] = KEYWORDS) -> list[str]:
    """Labels of the keywords that occur anywhere in ``text`` (case-insensitive substring)."""
    lower = text.lower()
    return [kw.label for kw in keywords if kw.label in lower]


def contains_near_word(text: str, keywords: tuple[Keyword, ...] = KEYWORDS) -> list[str]:
    """Registered near-words that occur in ``text`` as whole words (case-insensitive)."""
    lower = text.lower()
    words = {n.word.lower() for kw in keywords for n in kw.near}
    return sorted(w for w in words if re.search(rf"\b{re.escape(w)}\b", lower))


def neutral_clauses() -> tuple[str, ...]:
    """:data:`NEUTRAL_CLAUSES` plus the bundled demo's filler sentences that hold no keyword,
    no near-word (so that every near-word is counted) and no "windowsill" (not in
    pocketsphinx's dictionary)."""
    demo = tuple(
        s.rstrip(".?!")
        for s in FILLER_SENTENCES
        if not contains_keyword(s) and not contains_near_word(s) and "windowsill" not in s
    )
    return NEUTRAL_CLAUSES + demo


def check_texts(keywords: tuple[Keyword, ...] = KEYWORDS) -> None:
    """Fail if a keyword occurs in text that is not annotated as that keyword.

    Carrier clauses, lead-ins, connectives and neutral clauses must be free of every keyword;
    a near-word clause may contain a keyword only inside its registered near-word.
    """
    plain = list(neutral_clauses()) + list(LEAD_INS) + list(CONNECTIVES)
    for kw in keywords:
        plain += [part for clause in kw.clauses for part in clause]
    bad = [(t, found) for t in plain if (found := contains_keyword(t, keywords))]
    bad += [(t, found) for t in NEUTRAL_CLAUSES if (found := contains_near_word(t, keywords))]
    for kw in keywords:
        for near in kw.near:
            if near.word.lower() not in near.text.lower():
                raise ValueError(f"near-word {near.word!r} is not in {near.text!r}")
            rest = re.sub(re.escape(near.word), " ", near.text, flags=re.IGNORECASE)
            if found := contains_keyword(rest, keywords):
                bad.append((near.text, found))
    if bad:
        raise ValueError(f"keyword(s) in non-keyword text: {bad}")
