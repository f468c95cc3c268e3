"""Online models: session intent, journey stage, a click re-ranker and collaborative filtering.

Every model learns one example at a time, keeps prequential metrics (each example is scored
*before* it is learnt, so the metrics estimate performance on unseen data), counts its updates in
``version`` and round-trips through :func:`dumps` / :func:`loads` so a worker can publish it to a
compacted topic and restore it on start. River is used only in this module: an API change in
River touches this file and nothing else.

>>> from persona.profile import Profile
>>> p = Profile("u1", recent=[["a", 1000.0, "view_item"], ["b", 1030.0, "view_item"]],
...             session={"id": "s", "start": 1000.0, "last": 1030.0, "events": 2},
...             first_seen=1000.0, last_seen=1030.0)
>>> x = session_features(p, now=1060.0, catalog={})
>>> x["depth"], x["distinct_items"], x["returning"]
(2.0, 2.0, 0.0)
>>> model = IntentModel()
>>> model.predict(x)
0.5
>>> model.learn(x, converted=False)
>>> model.metrics()["examples"], model.version
(1, 1)
>>> loads(dumps(model)).predict(x) == model.predict(x)
True
"""

from __future__ import annotations

import collections
import io
import math
import numbers
import pickle
import random
import struct
import zlib
from collections import Counter
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np
from river import compose, linear_model, metrics, optim, preprocessing, reco

from persona.catalog import Product
from persona.popularity import prior
from persona.profile import Profile

__all__ = ["session_features", "journey_stage", "IntentModel", "ReRanker", "Shopper", "Collaborative",
           "dumps", "loads", "STAGES"]

DAY = 86400.0
DWELL_CAP = 2 * 3600.0
MAX_CONFIDENCE = 5  # learning steps for the strongest signal
STAGES = ("browse", "consider", "cart", "purchase", "returning")
VIEWS = {"view_item", "select_item"}


def _session(profile: Profile, now: float) -> tuple[float, list[list[Any]]]:
    """Start of the current session and its item events up to ``now``, oldest first."""
    start = float(profile.session.get("start", now))
    return start, [r for r in profile.recent if start <= r[1] <= now]


def _dominant(products: Sequence[Product]) -> tuple[str, float]:
    """The most common non-empty family among ``products`` and its share of them."""
    families = Counter(p.family for p in products if p.family)
    if not families:
        return "", 0.0
    family, n = min(families.items(), key=lambda kv: (-kv[1], kv[0]))
    return family, n / sum(families.values())


def _touched(entries: Sequence[Sequence[Any]], catalog: Mapping[str, Product]) -> list[Product]:
    """Distinct catalog products among ``[item_id, ts, event_name]`` entries."""
    ids = dict.fromkeys(e[0] for e in entries)
    return [catalog[i] for i in ids if i in catalog]


def _mean_log_price(products: Sequence[Product]) -> float:
    logs = [math.log2(p.price) for p in products if p.price > 0]
    return sum(logs) / len(logs) if logs else 0.0


class Shopper(NamedTuple):
    """What the re-ranker's features need of a shopper, computed once per answer, not per candidate.

    >>> a = Product(item_id="a", brand="X", name="A", family="woody", price=512.0)
    >>> Shopper.of(Profile("u", recent=[["a", 10.0, "view_item"]]), {"a": a})
    Shopper(family='woody', brands=frozenset({'X'}), mean_log_price=9.0)
    """

    family: str
    brands: frozenset
    mean_log_price: float

    @classmethod
    def of(cls, profile: Profile | None, catalog: Mapping[str, Product]) -> "Shopper":
        seen = _touched(profile.recent, catalog) if profile is not None else []
        return cls(_dominant(seen)[0], frozenset(p.brand for p in seen), _mean_log_price(seen))


def session_features(profile: Profile, now: float, catalog: Mapping[str, Product]) -> dict[str, Any]:
    """Features of the user's current session up to ``now``: numbers plus the dominant family.

    Item counts come from ``profile.recent`` entries between the session start and ``now``;
    "viewed" items are all items touched in the session (views, selects, cart adds).
    Durations are capped and log-scaled; the hour of ``now`` (UTC) is a sin/cos pair.

    >>> p = Profile("u", recent=[["a", 50.0, "view_item"], ["b", 200.0, "view_item"],
    ...                          ["b", 260.0, "add_to_cart"]], cart=["b"],
    ...             session={"id": "s", "start": 200.0, "last": 260.0, "events": 2},
    ...             first_seen=50.0, last_seen=260.0)
    >>> x = session_features(p, now=300.0, catalog={})
    >>> x["views"], x["cart_adds"], x["cart_size"], round(x["dwell"], 3), x["family"]
    (1.0, 1.0, 1.0, 4.615, '')
    """
    start, entries = _session(profile, now)
    kinds = Counter(e[2] for e in entries)
    viewed = _touched(entries, catalog)
    family, share = _dominant(viewed)
    before = [e[1] for e in profile.recent if e[1] < now]
    prev = max(before) if before else now
    hour = 2 * math.pi * (now % DAY) / DAY
    return {
        "dwell": math.log1p(min(max(now - start, 0.0), DWELL_CAP)),
        "depth": float(profile.session.get("events", 0)),
        "distinct_items": float(len({e[0] for e in entries})),
        "views": float(kinds["view_item"]),
        "selects": float(kinds["select_item"]),
        "cart_adds": float(kinds["add_to_cart"]),
        "cart_size": float(len(profile.cart)),
        "returning": float(0 < profile.first_seen < start - DAY),
        "past_purchases": math.log1p(profile.counts.get("purchase", 0)),
        "since_prev": math.log1p(min(now - prev, DWELL_CAP)),
        "price_band": _mean_log_price(viewed),
        "family_share": share,
        "hour_sin": math.sin(hour),
        "hour_cos": math.cos(hour),
        "family": family,
    }


def journey_stage(profile: Profile, intent: float | None, now: float,
                  catalog: Mapping[str, Product] | None = None) -> str:
    """Where the user is in the journey, the first rule that holds winning:

    1. ``purchase``: an item put in the cart this session is now bought (the profile keeps no
       purchase times, so this is how a purchase in the current session shows);
    2. ``cart``: the cart is not empty;
    3. ``consider``: ``intent >= 0.5``, or 3+ views this session with an item viewed twice
       or 2+ distinct items of one family (when ``catalog`` is given);
    4. ``returning``: past purchases, or first seen more than a day before the session;
    5. ``browse``.

    >>> s = {"id": "s", "start": 100.0, "last": 130.0, "events": 3}
    >>> views = [["a", 100.0, "view_item"], ["b", 110.0, "view_item"], ["a", 130.0, "view_item"]]
    >>> journey_stage(Profile("u", recent=views[:2], session=s, first_seen=100.0), None, 140.0)
    'browse'
    >>> journey_stage(Profile("u", recent=views, session=s, first_seen=100.0), None, 140.0)
    'consider'
    >>> journey_stage(Profile("u", recent=views[:1], session=s, first_seen=100.0), 0.7, 140.0)
    'consider'
    >>> journey_stage(Profile("u", recent=views[:1], session=s, purchased=["z"]), None, 140.0)
    'returning'
    >>> journey_stage(Profile("u", session=s, cart=["a"]), 0.1, 140.0)
    'cart'
    >>> journey_stage(Profile("u", recent=[["a", 120.0, "add_to_cart"]], session=s,
    ...                       purchased=["a"]), None, 140.0)
    'purchase'
    """
    start, entries = _session(profile, now)
    carted = {e[0] for e in entries if e[2] == "add_to_cart"}
    if any(i in carted and i not in profile.cart for i in profile.purchased):
        return "purchase"
    if profile.cart:
        return "cart"
    views = [e[0] for e in entries if e[2] in VIEWS]
    repeat = len(views) > len(set(views))
    if catalog is not None and not repeat:
        families = Counter(catalog[i].family for i in set(views) if i in catalog and catalog[i].family)
        repeat = any(n >= 2 for n in families.values())
    if (intent is not None and intent >= 0.5) or (len(views) >= 3 and repeat):
        return "consider"
    returning = 0 < profile.first_seen < start - DAY or profile.purchased or profile.counts.get("purchase")
    return "returning" if returning else "browse"


class _Classifier:
    """Scaled logistic regression with prequential log loss and ROC AUC.

    Numbers go through a StandardScaler, strings through a one-hot encoder: scaling one-hot
    columns would zero them (River updates a column's mean only when the column is present).
    """

    def __init__(self, lr: float = 0.05, l2: float = 1e-4):
        num = compose.SelectType(numbers.Number) | preprocessing.StandardScaler()
        cat = compose.SelectType(str) | preprocessing.OneHotEncoder(drop_zeros=True)
        self.model = (num + cat) | linear_model.LogisticRegression(
            optimizer=optim.SGD(lr), l2=l2, intercept_lr=lr)
        self.log_loss = metrics.LogLoss()
        self.roc_auc = metrics.ROCAUC(n_thresholds=50)
        self.examples = self.positives = self.version = 0

    def predict(self, features: Mapping[str, Any]) -> float:
        """P(positive) in [0, 1]; 0.5 before any learning."""
        return float(self.model.predict_proba_one(dict(features)).get(True, 0.0))

    def compiled(self):
        """:meth:`predict` for the weights as they are now, as one plain function: the scaler, the
        one-hot encoder and the dot product folded into one weight per feature (or category), ~10x
        faster than River's pipeline. For a snapshot that serves and no longer learns.

        >>> m = ReRanker()
        >>> for n in range(50):
        ...     m.learn({"source": "cf" if n % 3 else "content", "log_score": n / 50}, clicked=n % 3 == 0)
        >>> x = {"source": "content", "log_score": 0.3}
        >>> round(m.compiled()(x), 12) == round(m.predict(x), 12)
        True
        """
        union, regression = self.model.steps.values()
        scaler = next(iter(union.transformers.values())).steps["StandardScaler"]
        weights, intercept = dict(regression.weights), regression.intercept
        slope = {k: weights.get(k, 0.0) / v**0.5 for k, v in scaler.vars.items() if v}  # a zero variance scales to 0
        shift = {k: -scaler.means[k] * a for k, a in slope.items()}
        Number = (int, float)  # what features hold; numbers.Number is an ABC, and its check is slow

        def predict(features: Mapping[str, Any]) -> float:
            z = intercept
            for k, v in features.items():
                if isinstance(v, str):
                    z += weights.get(f"{k}_{v}", 0.0)
                elif isinstance(v, Number) and k in slope:
                    z += slope[k] * v + shift[k]
            return 0.0 if z < -30 else 1.0 if z > 30 else 1.0 / (1.0 + math.exp(-z))
        return predict

    def _learn(self, features: Mapping[str, Any], y: bool) -> None:
        y_pred = self.predict(features)  # scored before learning: prequential
        self.log_loss.update(y, y_pred)
        self.roc_auc.update(y, y_pred)
        self.examples += 1
        self.positives += int(y)
        self.model.learn_one(dict(features), y)
        self.version += 1

    def metrics(self) -> dict[str, Any]:
        """``examples``, ``log_loss``, ``roc_auc`` (None until both classes were seen), ``positive_rate``."""
        n, both = self.examples, 0 < self.positives < self.examples
        return {"examples": n,
                "log_loss": float(self.log_loss.get()) if n else None,
                "roc_auc": float(self.roc_auc.get()) if both else None,
                "positive_rate": self.positives / n if n else None}


class IntentModel(_Classifier):
    """P(the session converts: an add-to-cart or a purchase) from :func:`session_features`.

    Compute the features at a time before the outcome is known, learn once the session ends.
    """

    def learn(self, features: Mapping[str, Any], converted: bool) -> None:
        self._learn(features, bool(converted))


class ReRanker(_Classifier):
    """P(click or add-to-cart | user, item, how it was proposed) learnt from impressions.

    >>> a = Product(item_id="a", brand="X", name="A", family="woody", price=500.0)
    >>> b = Product(item_id="b", brand="X", name="B", family="woody", price=1000.0)
    >>> user = Profile("u", recent=[["a", 10.0, "view_item"]])
    >>> x = ReRanker.features(b, "content", 0.8, 0, "home", user, {"a": a})
    >>> x["family_match"], x["brand_seen"], x["price_ratio"], x["source"]
    (1.0, 1.0, 1.0, 'content')
    """

    @staticmethod
    def features(item: Product, source: str, score: float, position: int, slot: str | None,
                 profile: Profile | Shopper | None, catalog: Mapping[str, Product],
                 popularity: float | None = None) -> dict[str, Any]:
        """Features of one impression; ``price_ratio`` is log2(item price / mean viewed price).

        For many items shown to one shopper, pass ``Shopper.of(profile, catalog)`` once.
        """
        shopper = profile if isinstance(profile, Shopper) else Shopper.of(profile, catalog)
        family, mean_price = shopper.family, shopper.mean_log_price
        return {
            "source": source,
            "slot": slot or "none",
            "log_score": math.log1p(max(score, 0.0)),
            "log_position": math.log1p(max(position, 0)),  # attention decays like DCG's discount
            "family_match": float(bool(family) and item.family == family),
            "brand_seen": float(item.brand in shopper.brands),
            "price_ratio": math.log2(item.price) - mean_price if item.price > 0 and mean_price else 0.0,
            "rating": prior(item),
            "popularity": math.log1p(max(popularity or 0.0, 0.0)),
        }

    def learn(self, features: Mapping[str, Any], clicked: bool) -> None:
        self._learn(features, bool(clicked))

    def scorer(self, catalog: Mapping[str, Product]):
        """P(click) as the blender asks for it: ``scorer(profile, slot)`` gives one answer's scoring
        function ``(candidate, rank) -> P(click)``, the shopper's side of the features computed once."""
        predict = self.compiled()

        def for_answer(profile: Profile | None, slot: str | None):
            shopper = Shopper.of(profile, catalog)
            return lambda c, rank: predict(self.features(catalog[c.item_id], c.source, c.score, rank, slot,
                                                              shopper, catalog))
        return for_answer


class Collaborative:
    """Online biased matrix factorisation on implicit feedback, for at most ``max_users`` users.

    The caller maps events to weights (view 1, cart 3, purchase 5); scores are preferences, about
    0 to 1. Users are evicted least recently learnt first; items are bounded by the catalog.

    >>> cf = Collaborative(seed=1)
    >>> for item in ["a", "b", "c"]:
    ...     cf.learn("u1", item, 1.0)
    >>> cf.known_user("u1"), cf.known_user("u2"), cf.version
    (True, False, 3)
    >>> sorted(i for i, _ in cf.top("u1", k=5, exclude={"a"}))
    ['b', 'c']
    """

    def __init__(self, n_factors: int = 16, lr: float = 0.1, l2: float = 0.01,
                 negatives: int = 2, max_users: int = 20_000, seed: int | None = None):
        # Plain SGD keeps no per-key state, so deleting a user's weights forgets them entirely.
        # Biases learn at half the rate of the factors, or popularity drowns out taste.
        self.mf = reco.BiasedMF(
            n_factors=n_factors, bias_optimizer=optim.SGD(lr / 2), latent_optimizer=optim.SGD(lr),
            l2_bias=l2, l2_latent=l2, seed=seed,
            latent_initializer=optim.initializers.Normal(sigma=0.1, seed=seed), clip_gradient=1.0)
        self.negatives = negatives
        self.max_users = max_users
        self.rng = random.Random(seed)
        self.items: list[str] = []
        self._item_set: set[str] = set()
        self._users: collections.OrderedDict[str, None] = collections.OrderedDict()
        self.version = 0

    def known_user(self, user_id: str) -> bool:
        return user_id in self._users

    def learn(self, user_id: str, item_id: str, weight: float) -> None:
        """Learn that ``user_id`` wants ``item_id``, with confidence ``weight`` (<= 0: does not)."""
        if item_id not in self._item_set:
            self._item_set.add(item_id)
            self.items.append(item_id)
        self._users[user_id] = None
        self._users.move_to_end(user_id)
        # The target is a preference (1 wanted, 0 not) and the weight a confidence, as in implicit
        # ALS: a stronger signal takes more steps. Regressing on the raw weights fits their noise.
        # Implicit feedback has only positives: fitted on them alone, every prediction drifts to
        # the mean and taste is lost. A random known item is most likely one the user does not
        # want, so a few of them per step, rated 0, teach the contrast between the user's items
        # and the rest.
        wanted = weight > 0
        for _ in range(min(max(round(weight), 1), MAX_CONFIDENCE) if wanted else 1):
            self.mf.learn_one(user_id, item_id, float(wanted))
            for _ in range(self.negatives if wanted and len(self.items) > 1 else 0):
                other = self.rng.choice(self.items)
                if other != item_id:
                    self.mf.learn_one(user_id, other, 0.0)
        while len(self._users) > self.max_users:
            self._drop(next(iter(self._users)))
        self.version += 1

    def _drop(self, user_id: str) -> None:
        self._users.pop(user_id, None)
        for table in (self.mf.u_biases, self.mf.u_latents):
            table.pop(user_id, None)

    def forget(self, user_id: str) -> None:
        """Remove everything the model holds about a user (a deletion request)."""
        self._drop(user_id)
        self.version += 1

    def score(self, user_id: str, item_ids: Sequence[str]) -> list[float]:
        """Predicted preference per item; unknown users and items get only the bias terms."""
        mf, zero = self.mf, np.zeros(self.mf.n_factors)  # .get: River's defaultdicts store misses
        vecs = np.array([mf.i_latents.get(i, zero) for i in item_ids]).reshape(len(item_ids), mf.n_factors)
        biases = np.array([mf.i_biases.get(i, 0.0) for i in item_ids])
        base = mf.global_mean.get() + mf.u_biases.get(user_id, 0.0)
        return (base + biases + vecs @ mf.u_latents.get(user_id, zero)).tolist()

    def _item_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """Item factors and biases as arrays in ``self.items`` order, rebuilt when the model changed."""
        cached = self.__dict__.get("_matrix")
        if cached is None or cached[0] != (self.version, len(self.items)):
            mf, zero = self.mf, np.zeros(self.mf.n_factors)
            vecs = np.array([mf.i_latents.get(i, zero) for i in self.items]).reshape(len(self.items), mf.n_factors)
            biases = np.array([mf.i_biases.get(i, 0.0) for i in self.items])
            cached = self._matrix = ((self.version, len(self.items)), vecs, biases)
        return cached[1], cached[2]

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_matrix"}  # derived: not in snapshots

    def top(self, user_id: str, k: int, exclude: Sequence[str] | set[str] = ()) -> list[tuple[str, float]]:
        """The ``k`` best known items for ``user_id``, best first (ties by id), without ``exclude``."""
        if k <= 0 or not self.items:
            return []
        mf = self.mf
        vecs, biases = self._item_matrix()
        base = mf.global_mean.get() + mf.u_biases.get(user_id, 0.0)
        scores = base + biases + vecs @ mf.u_latents.get(user_id, np.zeros(mf.n_factors))
        skip = set(exclude)
        wanted = min(len(scores), k + len(skip))
        if wanted < len(scores):  # a shortlist: everything at least as good as the wanted-th best
            kth = np.partition(scores, len(scores) - wanted)[len(scores) - wanted]
            shortlist = np.flatnonzero(scores >= kth)
        else:
            shortlist = range(len(scores))
        items = self.items
        ranked = sorted(((items[j], float(scores[j])) for j in shortlist if items[j] not in skip),
                        key=lambda t: (-t[1], t[0]))
        return ranked[:k]


# Snapshots -------------------------------------------------------------------------------------

MAGIC = b"PRSN"
FORMAT_VERSION = 1
_MODELS = {c.__name__: c for c in (IntentModel, ReRanker, Collaborative)}
_PACKAGES = (__name__, "persona.", "river.", "numpy")
_STDLIB = {("builtins", n) for n in ("float", "int", "bool", "str", "bytes", "set", "frozenset",
                                     "list", "dict", "tuple", "complex", "slice", "range")} | {
    ("collections", "Counter"), ("collections", "OrderedDict"), ("collections", "defaultdict"),
    ("functools", "partial"), ("numbers", "Number"), ("random", "Random"), ("copyreg", "_reconstructor")}


class _Unpickler(pickle.Unpickler):
    """Loads only what models are made of: a guard, not a sandbox; the topic must be trusted."""

    def find_class(self, module: str, name: str) -> Any:
        found = super().find_class(module, name) if module.startswith(_PACKAGES) else None
        if (module, name) in _STDLIB or str(getattr(found, "__module__", "")).startswith(_PACKAGES):
            return found or super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a model snapshot")


def dumps(model: Any) -> bytes:
    """Model -> bytes: ``PRSN``, format version, class name, zlib-compressed pickle."""
    name = type(model).__name__
    if name not in _MODELS:
        raise TypeError(f"not a persona model: {name}")
    header = MAGIC + struct.pack(">BB", FORMAT_VERSION, len(name)) + name.encode()
    return header + zlib.compress(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))


def loads(data: bytes, expected: type | None = None) -> Any:
    """Bytes from :func:`dumps` -> model; ValueError if they are not a (compatible) snapshot."""
    if len(data) < 6 or data[:4] != MAGIC:
        raise ValueError("not a persona model snapshot")
    version, size = struct.unpack(">BB", data[4:6])
    if version != FORMAT_VERSION:
        raise ValueError(f"snapshot format {version}, expected {FORMAT_VERSION}")
    name = data[6:6 + size].decode(errors="replace")
    cls = _MODELS.get(name)
    if cls is None or (expected is not None and cls is not expected):
        raise ValueError(f"snapshot holds {name!r}, expected {expected.__name__ if expected else 'a model'}")
    try:
        model = _Unpickler(io.BytesIO(zlib.decompress(data[6 + size:]))).load()
    except Exception as err:  # zlib.error, UnpicklingError, EOFError, ...
        raise ValueError(f"corrupted {name} snapshot: {err}") from None
    if type(model) is not cls:
        raise ValueError(f"snapshot header says {name}, payload is {type(model).__name__}")
    return model
