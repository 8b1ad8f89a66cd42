"""What the generated clips say: everyday English sentences that carry no style information.

The style corpus teaches a model to link *how* something is said to a caption. If the spoken
content ever mentioned a voice, a pace or a room, a text-aware speech tower could match captions
by the words it hears instead of the voice it hears. So the grammar below draws only from
vocabularies that are checked against `STYLE_WORDS` (and, in the tests, against the caption
vocabulary), and numbers are spelled out so that `count_syllables` can estimate speaking rate.

The grammar is deliberately broad (many sentence shapes, hundreds of words) so that content varies
independently of every style factor.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable

__all__ = ["STYLE_WORDS", "count_syllables", "make_sentence", "vocabulary"]

# Words describing voice, speech, sound, emotion, age, gender, accent or recording conditions.
# The grammar must never produce any of them (tests check every word it can produce).
STYLE_WORDS: frozenset[str] = frozenset(
    """
    loud louder loudest loudly loudness quiet quieter quietly quietness silent silence hush hushed
    whisper whispers whispered whispering murmur murmured mumble mumbled fast faster fastest quick
    quicker quickly rapid rapidly hurried hurry rushed brisk briskly swift swiftly slow slower
    slowest slowly leisurely unhurried sluggish pace tempo rate high higher highest low lower lowest
    pitch pitched voice voices voiced noisy noise noises echo echoes echoey echoing reverb room rooms
    hall halls calm calmly angry angrily happy sad excited nervous cheerful upset scared afraid
    surprised bored tired sleepy emotional emotion tone tones tense relaxed neutral deep deeper
    shout shouts shouted shouting yell yelled scream screamed cry cried sing sang sung song songs
    music speak speaks spoke spoken speaker speakers speaking speech say says said saying talk talks
    talked talking tell tells told chat chatted man men woman women male female guy guys lady ladies
    gentleman girl girls boy boys he she his her him hers british american english scottish irish
    welsh accent accents accented telephone telephones phone phones call called mobile handset
    microphone mic record records recorded recording studio radio audio volume sound sounds
    hear heard listen listened listener soft softly gentle gently harsh rough smooth warm bright
    thin thick breathy nasal hoarse creaky robotic raspy husky gravelly shrill squeaky hiss
    rumble static muffled crisp clear clean distant far close near dry hollow cavernous booming
    boom powerful strong weak faint forceful intense energetic lively animated flat dull
    expressive monotone monotonous melodic dynamic steady even normal average typical moderate
    medium ordinary usual natural young younger old older elderly aged adult child children kid
    kids senior youthful mature heavy light rich dark sharp sweet cold bass tenor soprano alto
    baritone treble line band background hum buzz crackle interference traffic crowd wind fan
    rain storm thunder roar drone tinny fine pure plain level full
    """.split()
)

_NAMES = (
    "Maria Tom Priya Omar Lucy Daniel Aisha Marco Hannah Felix Grace Samuel Chloe Oliver Nadia Peter "
    "Ruth Kevin Emma Jonas Sofia Martin Leila Adam Zoe Hugo Clara Tariq Ingrid Pablo Yuki Ben Rosa "
    "Victor Alice Simon Fatima Leo Julia Ahmed Nina Carlos Ella Stefan Mia Raj Lena Harold Anna "
    "Dominic Eva Lukas Maya Gregory Iris Patrick Sara Theo Bianca Oscar Helen Ivan Laura Nathan "
    "Olga Rafael Amy Edward Tessa Kofi Megan Arjun Diana Henry Paula Jack Wendy Luis Fiona Karl"
).split()

_PEOPLE = (
    "my sister", "my brother", "our neighbour", "the new manager", "my uncle", "my aunt", "the driver",
    "the teacher", "the baker", "the nurse", "the pilot", "the mechanic", "the librarian",
    "the landlord", "my cousin", "the plumber", "the gardener", "our guide", "the chef",
    "the shop assistant", "the postman", "my grandmother", "the doctor", "the receptionist",
    "the captain", "my colleague", "the farmer", "the tailor", "the dentist", "the carpenter",
)

# (singular, plural) nouns grouped by what can sensibly be done to them.
_CATEGORIES: dict[str, dict[str, tuple]] = {
    "food": {
        "nouns": (
            ("loaf", "loaves"), ("cake", "cakes"), ("pie", "pies"), ("apple", "apples"),
            ("lemon", "lemons"), ("sandwich", "sandwiches"), ("salad", "salads"), ("pizza", "pizzas"),
            ("pancake", "pancakes"), ("muffin", "muffins"), ("biscuit", "biscuits"), ("pear", "pears"),
            ("tomato", "tomatoes"), ("potato", "potatoes"), ("carrot", "carrots"), ("onion", "onions"),
            ("omelette", "omelettes"), ("orange", "oranges"), ("pastry", "pastries"),
            ("melon", "melons"), ("peach", "peaches"), ("sausage", "sausages"), ("pumpkin", "pumpkins"),
            ("cucumber", "cucumbers"), ("tart", "tarts"), ("bagel", "bagels"), ("noodle", "noodles"),
        ),
        "verbs": (
            ("bake", "baked", "baked", "bakes"), ("cook", "cooked", "cooked", "cooks"),
            ("buy", "bought", "bought", "buys"), ("order", "ordered", "ordered", "orders"),
            ("share", "shared", "shared", "shares"), ("slice", "sliced", "sliced", "slices"),
            ("wrap", "wrapped", "wrapped", "wraps"), ("pack", "packed", "packed", "packs"),
            ("eat", "ate", "eaten", "eats"), ("peel", "peeled", "peeled", "peels"),
        ),
        "adjectives": (
            "fresh", "spicy", "homemade", "frozen", "ripe", "burnt", "delicious", "leftover", "salty",
            "crunchy", "sticky", "juicy", "tasty", "stale", "huge", "tiny", "expensive", "cheap",
        ),
    },
    "paper": {
        "nouns": (
            ("letter", "letters"), ("report", "reports"), ("contract", "contracts"),
            ("invoice", "invoices"), ("receipt", "receipts"), ("ticket", "tickets"), ("form", "forms"),
            ("map", "maps"), ("recipe", "recipes"), ("poster", "posters"), ("notebook", "notebooks"),
            ("newspaper", "newspapers"), ("magazine", "magazines"), ("novel", "novels"),
            ("manual", "manuals"), ("calendar", "calendars"), ("timetable", "timetables"),
            ("postcard", "postcards"), ("passport", "passports"), ("diary", "diaries"),
            ("brochure", "brochures"), ("menu", "menus"), ("certificate", "certificates"),
        ),
        "verbs": (
            ("read", "read", "read", "reads"), ("write", "wrote", "written", "writes"),
            ("sign", "signed", "signed", "signs"), ("print", "printed", "printed", "prints"),
            ("post", "posted", "posted", "posts"), ("copy", "copied", "copied", "copies"),
            ("check", "checked", "checked", "checks"), ("lose", "lost", "lost", "loses"),
            ("scan", "scanned", "scanned", "scans"), ("translate", "translated", "translated", "translates"),
            ("review", "reviewed", "reviewed", "reviews"), ("finish", "finished", "finished", "finishes"),
            ("find", "found", "found", "finds"), ("file", "filed", "filed", "files"),
        ),
        "adjectives": (
            "signed", "printed", "missing", "updated", "blank", "torn", "crumpled", "official",
            "handwritten", "urgent", "lengthy", "short", "folded", "original", "extra", "yellow",
        ),
    },
    "vehicle": {
        "nouns": (
            ("car", "cars"), ("bicycle", "bicycles"), ("van", "vans"), ("truck", "trucks"),
            ("scooter", "scooters"), ("boat", "boats"), ("tractor", "tractors"),
            ("motorbike", "motorbikes"), ("caravan", "caravans"), ("canoe", "canoes"),
            ("trailer", "trailers"), ("taxi", "taxis"),
        ),
        "verbs": (
            ("drive", "drove", "driven", "drives"), ("park", "parked", "parked", "parks"),
            ("fix", "fixed", "fixed", "fixes"), ("service", "serviced", "serviced", "services"),
            ("repair", "repaired", "repaired", "repairs"), ("sell", "sold", "sold", "sells"),
            ("rent", "rented", "rented", "rents"), ("borrow", "borrowed", "borrowed", "borrows"),
            ("paint", "painted", "painted", "paints"), ("load", "loaded", "loaded", "loads"),
        ),
        "adjectives": (
            "rented", "red", "blue", "green", "rusty", "shiny", "electric", "borrowed", "dusty",
            "second-hand", "spare", "broken", "silver", "orange", "enormous", "little",
        ),
    },
    "household": {
        "nouns": (
            ("ladder", "ladders"), ("hammer", "hammers"), ("umbrella", "umbrellas"),
            ("kettle", "kettles"), ("lamp", "lamps"), ("blanket", "blankets"),
            ("suitcase", "suitcases"), ("backpack", "backpacks"), ("key", "keys"), ("wallet", "wallets"),
            ("jacket", "jackets"), ("scarf", "scarves"), ("chair", "chairs"), ("table", "tables"),
            ("sofa", "sofas"), ("shelf", "shelves"), ("mirror", "mirrors"), ("clock", "clocks"),
            ("basket", "baskets"), ("bucket", "buckets"), ("towel", "towels"), ("pillow", "pillows"),
            ("curtain", "curtains"), ("drawer", "drawers"), ("candle", "candles"), ("box", "boxes"),
            ("jar", "jars"), ("bottle", "bottles"), ("rug", "rugs"), ("cupboard", "cupboards"),
        ),
        "verbs": (
            ("borrow", "borrowed", "borrowed", "borrows"), ("return", "returned", "returned", "returns"),
            ("carry", "carried", "carried", "carries"), ("move", "moved", "moved", "moves"),
            ("scrub", "scrubbed", "scrubbed", "scrubs"), ("fix", "fixed", "fixed", "fixes"),
            ("find", "found", "found", "finds"), ("pack", "packed", "packed", "packs"),
            ("hang", "hung", "hung", "hangs"), ("fold", "folded", "folded", "folds"),
            ("paint", "painted", "painted", "paints"), ("replace", "replaced", "replaced", "replaces"),
            ("dust", "dusted", "dusted", "dusts"), ("sell", "sold", "sold", "sells"),
        ),
        "adjectives": (
            "wooden", "broken", "spare", "striped", "blue", "green", "purple", "woollen", "folding",
            "antique", "brand new", "plastic", "metal", "tiny", "huge", "yellow", "borrowed", "cosy",
        ),
    },
    "garden": {
        "nouns": (
            ("rose", "roses"), ("tulip", "tulips"), ("hedge", "hedges"), ("tree", "trees"),
            ("lawn", "lawns"), ("seedling", "seedlings"), ("sunflower", "sunflowers"),
            ("cherry tree", "cherry trees"), ("vegetable patch", "vegetable patches"),
            ("strawberry", "strawberries"), ("bush", "bushes"), ("daisy", "daisies"),
            ("flower bed", "flower beds"), ("vine", "vines"), ("cactus", "cactuses"),
        ),
        "verbs": (
            ("water", "watered", "watered", "waters"), ("plant", "planted", "planted", "plants"),
            ("trim", "trimmed", "trimmed", "trims"), ("prune", "pruned", "pruned", "prunes"),
            ("dig", "dug", "dug", "digs"), ("weed", "weeded", "weeded", "weeds"),
            ("photograph", "photographed", "photographed", "photographs"),
        ),
        "adjectives": (
            "tall", "overgrown", "tidy", "purple", "scarlet", "yellow", "tiny", "enormous", "wild",
            "neighbour's", "new", "prize-winning", "thirsty", "shady",
        ),
    },
    "animal": {
        "nouns": (
            ("dog", "dogs"), ("cat", "cats"), ("horse", "horses"), ("goat", "goats"),
            ("rabbit", "rabbits"), ("parrot", "parrots"), ("hamster", "hamsters"),
            ("chicken", "chickens"), ("pony", "ponies"), ("tortoise", "tortoises"), ("puppy", "puppies"),
            ("kitten", "kittens"), ("donkey", "donkeys"), ("goldfish", "goldfish"), ("duck", "ducks"),
        ),
        "verbs": (
            ("feed", "fed", "fed", "feeds"), ("walk", "walked", "walked", "walks"),
            ("brush", "brushed", "brushed", "brushes"), ("find", "found", "found", "finds"),
            ("adopt", "adopted", "adopted", "adopts"), ("photograph", "photographed", "photographed", "photographs"),
            ("bathe", "bathed", "bathed", "bathes"), ("look after", "looked after", "looked after", "looks after"),
        ),
        "adjectives": (
            "tiny", "fluffy", "stubborn", "spotted", "grey", "ginger", "hungry", "lost", "friendly",
            "clever", "lazy", "scruffy", "neighbour's", "new",
        ),
    },
}

_PLACES = (
    "library", "station", "market", "bakery", "museum", "harbour", "airport", "garden", "park",
    "bridge", "office", "school", "hospital", "pharmacy", "post office", "bank", "cinema", "stadium",
    "beach", "farm", "village", "castle", "supermarket", "garage", "hotel", "campsite",
    "swimming pool", "car park", "bus stop", "corner shop", "bookshop", "petrol station",
    "town square", "river", "lake", "island", "forest", "field", "restaurant", "theatre", "zoo",
    "factory", "warehouse", "university", "playground", "laundrette", "gallery", "greengrocer",
    "butcher's", "cafe", "ferry terminal", "allotment", "marina", "barn", "orchard", "vineyard",
    "workshop", "pier", "fire station", "town centre", "sports centre", "post box", "canal",
)

# Places with opening hours, for sentences about opening and closing.
_SHOPS = (
    "library", "market", "bakery", "museum", "post office", "bank", "cinema", "pharmacy",
    "supermarket", "bookshop", "corner shop", "gallery", "greengrocer", "butcher's", "cafe",
    "laundrette", "restaurant", "swimming pool", "sports centre", "zoo",
)

_CITIES = (
    "Lisbon", "Oslo", "Vienna", "Prague", "Bristol", "Cardiff", "Leeds", "Brighton", "Oxford",
    "Cambridge", "Dover", "Bath", "Madrid", "Naples", "Geneva", "Porto", "Bergen", "Krakow",
    "Helsinki", "Seville", "Toronto", "Melbourne", "Nairobi", "Santiago", "Hamburg", "Lyon",
    "Munich", "Valencia", "Turin", "Copenhagen", "Stockholm", "Boston", "Chicago", "Denver",
)

_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)
_PARTS_OF_DAY = ("morning", "afternoon", "evening", "night")
_ORDINALS = (
    "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
    "eleventh", "twelfth", "fourteenth", "fifteenth", "twentieth", "twenty-first", "thirtieth",
)
_UNITS = ("minutes", "hours", "days", "weeks", "miles", "metres", "kilometres", "steps", "pages")
_CURRENCIES = ("pounds", "euros", "dollars")
_CONTAINERS = ("box", "drawer", "cupboard", "fridge", "basket", "van", "cellar", "attic", "shed", "bag")
_MEALS = ("breakfast", "lunch", "dinner", "supper", "the meeting", "the match", "the concert", "school")

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> str:
    """Spell 0-999 in words, because digits would defeat syllable counting and sound-alike checks."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("" if ones == 0 else "-" + _ONES[ones])
    hundreds, rest = divmod(n, 100)
    head = _ONES[hundreds] + " hundred"
    return head if rest == 0 else head + " and " + number_words(rest)


def _pick(rng: random.Random, options: tuple | list):
    return options[rng.randrange(len(options))]


def _a(word: str) -> str:
    """Indefinite article that reads right for the spelled word."""
    return ("an " if word[0] in "aeiou" else "a ") + word


def _clock_time(rng: random.Random) -> str:
    hour = _ONES[rng.randint(1, 12)]
    return _pick(
        rng,
        (
            f"at {hour} o'clock",
            f"at half past {hour}",
            f"at a quarter to {hour}",
            f"at a quarter past {hour}",
            f"at {hour} thirty",
            f"at {hour} fifteen",
            f"at {hour} forty-five",
            "at noon",
            "at midnight",
        ),
    )


def _time(rng: random.Random) -> str:
    day, month, part = _pick(rng, _DAYS), _pick(rng, _MONTHS), _pick(rng, _PARTS_OF_DAY)
    return _pick(
        rng,
        (
            f"on {day}",
            f"on {day} {part}",
            f"last {day}",
            f"next {day}",
            "yesterday",
            "this morning",
            "this afternoon",
            "this evening",
            "last night",
            "tomorrow morning",
            "last week",
            "last month",
            f"in {month}",
            f"on the {_pick(rng, _ORDINALS)} of {month}",
            f"before {_pick(rng, _MEALS)}",
            f"after {_pick(rng, _MEALS)}",
            "by the weekend",
            "at the weekend",
            f"{_clock_time(rng)} on {day}",
            _clock_time(rng),
            f"every {day}",
            f"in {number_words(rng.randint(2, 40))} minutes",
        ),
    )


def _future_time(rng: random.Random) -> str:
    day, month = _pick(rng, _DAYS), _pick(rng, _MONTHS)
    return _pick(
        rng,
        (
            f"on {day}",
            f"next {day}",
            "tomorrow",
            "tomorrow morning",
            "next week",
            f"in {month}",
            "by the weekend",
            f"before {_pick(rng, _MEALS)}",
            _clock_time(rng),
            f"by {day}",
            "tonight",
        ),
    )


def _person(rng: random.Random) -> str:
    return _pick(rng, _NAMES) if rng.random() < 0.65 else _pick(rng, _PEOPLE)


def _place(rng: random.Random) -> str:
    prep = _pick(rng, ("at the", "behind the", "beside the", "next to the", "opposite the", "outside the", "by the"))
    return f"{prep} {_pick(rng, _PLACES)}"


def _thing(rng: random.Random, cat: dict, plural: bool | None = None, adjective: float = 0.5) -> str:
    sing, plur = _pick(rng, cat["nouns"])
    if plural is None:
        plural = rng.random() < 0.35
    noun = plur if plural else sing
    if rng.random() < adjective:
        noun = f"{_pick(rng, cat['adjectives'])} {noun}"
    if plural:
        det = _pick(rng, ("the", "the", "some", "two", "three", "those", "all the", "a few"))
        return f"{det} {noun}"
    det = _pick(rng, ("the", "the", "that", "our", "my", "your", "a"))
    return _a(noun) if det == "a" else f"{det} {noun}"


def _category(rng: random.Random) -> dict:
    return _CATEGORIES[_pick(rng, tuple(_CATEGORIES))]


def _past_clause(rng: random.Random) -> str:
    cat = _category(rng)
    verb = _pick(rng, cat["verbs"])[1]
    tail = _pick(rng, ("place", "time", "both", "none"))
    parts = [_person(rng), verb, _thing(rng, cat)]
    if tail in ("place", "both"):
        parts.append(_place(rng))
    if tail in ("time", "both"):
        parts.append(_time(rng))
    return " ".join(parts)


def _future_clause(rng: random.Random) -> str:
    cat = _category(rng)
    verb = _pick(rng, cat["verbs"])[0]
    modal = _pick(rng, ("will", "can", "might", "should", "is going to", "promised to", "wants to", "hopes to"))
    return f"{_person(rng)} {modal} {verb} {_thing(rng, cat)} {_future_time(rng)}"


def _fact_clause(rng: random.Random) -> str:
    cat = _category(rng)
    sing, plur = _pick(rng, cat["nouns"])
    city, place, shop = _pick(rng, _CITIES), _pick(rng, _PLACES), _pick(rng, _SHOPS)
    return _pick(
        rng,
        (
            f"the {shop} opens {_clock_time(rng)} on {_pick(rng, _DAYS)}",
            f"the train to {city} leaves {_clock_time(rng)}",
            f"the ferry from {city} arrives {_clock_time(rng)}",
            f"there are {number_words(rng.randint(2, 60))} {plur} in the {_pick(rng, _CONTAINERS)}",
            f"the {sing} costs {number_words(rng.randint(2, 99))} {_pick(rng, _CURRENCIES)}",
            f"the {place} is {number_words(rng.randint(2, 30))} {_pick(rng, _UNITS)} from here",
            f"the {shop} closes early {_future_time(rng)}",
            f"the flight to {city} was delayed by {number_words(rng.randint(2, 9))} hours",
            f"the {place} in {city} sells {plur}",
            f"the {sing} {_pick(rng, ('belongs', 'goes back'))} to {_person(rng)}",
            f"{_person(rng)} lives {_pick(rng, ('beside', 'behind', 'opposite', 'next to'))} the {place}",
            f"{_person(rng)} moved to {city} in {_pick(rng, _MONTHS)}",
            f"{_person(rng)} has {number_words(rng.randint(2, 12))} {plur}",
        ),
    )


def _statement(rng: random.Random) -> str:
    return _pick(rng, (_past_clause, _past_clause, _future_clause, _fact_clause))(rng)


def _question(rng: random.Random) -> str:
    cat = _category(rng)
    base, _past, participle, _third = _pick(rng, cat["verbs"])
    sing, plur = _pick(rng, cat["nouns"])
    return _pick(
        rng,
        (
            f"Did {_person(rng)} {base} {_thing(rng, cat)} {_time(rng)}?",
            f"Have you {participle} {_thing(rng, cat)} yet?",
            f"Where did you put the {sing}?",
            f"How many {plur} are left in the {_pick(rng, _CONTAINERS)}?",
            f"Is the {_pick(rng, _SHOPS)} open {_future_time(rng)}?",
            f"Who is going to {base} {_thing(rng, cat)} {_future_time(rng)}?",
            f"Could you {base} {_thing(rng, cat)} {_future_time(rng)}?",
            f"When does the train to {_pick(rng, _CITIES)} leave?",
            f"Why did {_person(rng)} {base} {_thing(rng, cat)} {_place(rng)}?",
            f"Would you like to {base} {_thing(rng, cat)} with {_person(rng)}?",
            f"How much did the {sing} cost {_place(rng)}?",
            f"Which {sing} belongs to {_person(rng)}?",
            f"Are the {plur} still {_place(rng)}?",
        ),
    )


def _instruction(rng: random.Random) -> str:
    cat = _category(rng)
    base = _pick(rng, cat["verbs"])[0]
    sing, _plur = _pick(rng, cat["nouns"])
    return _pick(
        rng,
        (
            f"Please {base} {_thing(rng, cat)} {_future_time(rng)}.",
            f"Remember to {base} {_thing(rng, cat)} {_place(rng)}.",
            f"Don't forget to {base} {_thing(rng, cat)} before you leave.",
            f"Turn left {_place(rng)} and walk for {number_words(rng.randint(2, 20))} minutes.",
            f"Take the second turning after the {_pick(rng, _PLACES)} and keep going.",
            f"Put the {sing} in the {_pick(rng, _CONTAINERS)} and lock it.",
            f"Try to {base} {_thing(rng, cat)} {_future_time(rng)} if you can.",
            f"First {base} {_thing(rng, cat)}, then meet {_person(rng)} {_place(rng)}.",
            f"Bring {number_words(rng.randint(2, 12))} {_plur} to the {_pick(rng, _PLACES)} {_future_time(rng)}.",
            f"Wait for {_person(rng)} {_place(rng)} until {_pick(rng, _ONES[1:13])} o'clock.",
        ),
    )


def _reported(rng: random.Random) -> str:
    who = _person(rng)
    verb = _pick(
        rng,
        ("mentioned", "wrote", "explained", "claimed", "promised", "noticed", "insisted",
         "admitted", "reported", "suggested", "remembered", "confirmed", "warned us"),
    )
    clause = _pick(rng, (_past_clause, _future_clause, _fact_clause))(rng)
    return _pick(
        rng,
        (
            f"{who} {verb} that {clause}.",
            f"According to {who}, {clause}.",
            f"{who} asked whether {clause}.",
            f"{who} wondered if {clause}.",
            f"Apparently {clause}.",
            f"The note on the door explained that {clause}.",
        ),
    )


def _compound(rng: random.Random) -> str:
    first, second = _statement(rng), _statement(rng)
    return _pick(
        rng,
        (
            f"{first}, but {second}.",
            f"{first}, and {second}.",
            f"{first} because {second}.",
            f"Although {first}, {second}.",
            f"{first}, so {second}.",
            f"After {_past_clause(rng)}, {second}.",
            f"{first} while {second}.",
        ),
    )


def _plain_statement(rng: random.Random) -> str:
    return _statement(rng) + "."


_STRUCTURES: tuple[tuple[Callable[[random.Random], str], float], ...] = (
    (_plain_statement, 0.30),
    (_question, 0.18),
    (_instruction, 0.17),
    (_reported, 0.17),
    (_compound, 0.18),
)

_WORD = re.compile(r"[A-Za-z]+")
MIN_WORDS, MAX_WORDS = 6, 20
MAX_SYLLABLES = 30


def _capitalise(text: str) -> str:
    return text[0].upper() + text[1:]


def make_sentence(rng: random.Random) -> str:
    """One sentence of 6-20 words; the same rng state always gives the same sentence.

    Candidates outside the length bounds are redrawn rather than trimmed, so every sentence stays
    grammatical; the syllable cap keeps clips near 2-6 seconds at ordinary speaking rates.
    """
    funcs = [f for f, _ in _STRUCTURES]
    weights = [w for _, w in _STRUCTURES]
    while True:
        make = rng.choices(funcs, weights)[0]
        text = _capitalise(make(rng))
        words = len(text.split())
        if MIN_WORDS <= words <= MAX_WORDS and count_syllables(text) <= MAX_SYLLABLES:
            return text


def _iter_strings() -> Iterable[str]:
    yield from _NAMES
    yield from _PEOPLE
    yield from _PLACES
    yield from _SHOPS
    yield from _CITIES
    yield from _DAYS
    yield from _MONTHS
    yield from _PARTS_OF_DAY
    yield from _ORDINALS
    yield from _UNITS
    yield from _CURRENCIES
    yield from _CONTAINERS
    yield from _MEALS
    yield from _ONES
    yield from _TENS[2:]
    for cat in _CATEGORIES.values():
        for pair in cat["nouns"]:
            yield from pair
        for forms in cat["verbs"]:
            yield from forms
        yield from cat["adjectives"]
    # Glue words of the sentence frames.
    yield (
        "at half past a quarter to o'clock noon midnight on last next yesterday this morning afternoon "
        "evening tonight tomorrow week month in the of before after by weekend every minutes hundred and "
        "behind beside next to opposite outside that our my your some two three those all few an "
        "will can might should is going promised wants hopes train leaves ferry from arrives there are "
        "costs opens closes early flight was delayed hours sells belongs goes back lives moved has did "
        "have you yet where put how many left are open who could when does leave why would like with "
        "much cost which still please remember don't forget before leave turn walk for take second "
        "turning keep going lock it try if first then meet bring wait until mentioned wrote explained "
        "claimed promised noticed insisted admitted reported suggested remembered confirmed warned us "
        "according asked whether wondered apparently note door but because although so while here"
    )


def vocabulary() -> frozenset[str]:
    """Every lower-case word the grammar can produce, so tests can check it exhaustively."""
    words: set[str] = set()
    for text in _iter_strings():
        words.update(w.lower() for w in _WORD.findall(text))
    return frozenset(words)


_VOWEL_GROUP = re.compile(r"[aeiouy]+")


def _word_syllables(word: str) -> int:
    w = word.lower()
    if not w:
        return 0
    if len(w) <= 3:
        return 1
    count = len(_VOWEL_GROUP.findall(w))
    # Silent final e ("make", "late") but not "-le" after a consonant ("table", "little").
    if w.endswith("e") and not w.endswith(("le", "ee", "ye")) and count > 1:
        count -= 1
    elif w.endswith("le") and len(w) > 2 and w[-3] in "aeiouy" and count > 1:
        count -= 1  # "whale", "mile"
    # "-es" / "-ed" are usually silent unless after t/d or sibilants ("wanted", "boxes").
    if w.endswith("ed") and count > 1 and w[-3] not in "td":
        count -= 1
    elif w.endswith("es") and count > 1 and w[-3] not in "sxzhgcaeiouy" and not w.endswith("les"):
        count -= 1
    # Vowel pairs that are usually two syllables.
    count += len(re.findall(r"ia|io(?!u)|eo|eu(?=m)|ua|uo|iet", w))
    return max(1, count)


def count_syllables(text: str) -> int:
    """Heuristic syllable count of English text.

    Tests use it to turn clip durations into syllables per second, so it must be close on average
    rather than exact per word: vowel groups, minus silent endings, plus common hiatus pairs.
    """
    return sum(_word_syllables(w) for w in _WORD.findall(text))
