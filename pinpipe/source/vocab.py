"""Vocabulary of the synthetic generator: the words, names and places its rows are made of.

Countries are the world list the original database drew from (Faker's ``en_US`` country provider: 243
names, long ones with parentheses and commas included). Words are grouped by the 13 real categories so
titles, descriptions and tags read like pins of their category.
"""

from __future__ import annotations


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


CATEGORIES: tuple[str, ...] = (
    "art", "beauty", "christmas", "diy-and-crafts", "education", "event-planning", "finance",
    "home-decor", "mens-fashion", "quotes", "tattoos", "travel", "vehicles",
)  # fmt: skip

COUNTRIES: tuple[str, ...] = (
    'Afghanistan', 'Albania', 'Algeria', 'American Samoa', 'Andorra', 'Angola', 'Anguilla',
    'Antarctica (the territory South of 60 deg S)', 'Antigua and Barbuda', 'Argentina', 'Armenia', 'Aruba',
    'Australia', 'Austria', 'Azerbaijan', 'Bahamas', 'Bahrain', 'Bangladesh', 'Barbados', 'Belarus',
    'Belgium', 'Belize', 'Benin', 'Bermuda', 'Bhutan', 'Bolivia', 'Bosnia and Herzegovina', 'Botswana',
    'Bouvet Island (Bouvetoya)', 'Brazil', 'British Indian Ocean Territory (Chagos Archipelago)',
    'British Virgin Islands', 'Brunei Darussalam', 'Bulgaria', 'Burkina Faso', 'Burundi', 'Cambodia',
    'Cameroon', 'Canada', 'Cape Verde', 'Cayman Islands', 'Central African Republic', 'Chad', 'Chile',
    'China', 'Christmas Island', 'Cocos (Keeling) Islands', 'Colombia', 'Comoros', 'Congo', 'Cook Islands',
    'Costa Rica', "Cote d'Ivoire", 'Croatia', 'Cuba', 'Cyprus', 'Czech Republic', 'Denmark', 'Djibouti',
    'Dominica', 'Dominican Republic', 'Ecuador', 'Egypt', 'El Salvador', 'Equatorial Guinea', 'Eritrea',
    'Estonia', 'Ethiopia', 'Falkland Islands (Malvinas)', 'Faroe Islands', 'Fiji', 'Finland', 'France',
    'French Guiana', 'French Polynesia', 'French Southern Territories', 'Gabon', 'Gambia', 'Georgia',
    'Germany', 'Ghana', 'Gibraltar', 'Greece', 'Greenland', 'Grenada', 'Guadeloupe', 'Guam', 'Guatemala',
    'Guernsey', 'Guinea', 'Guinea-Bissau', 'Guyana', 'Haiti', 'Heard Island and McDonald Islands',
    'Holy See (Vatican City State)', 'Honduras', 'Hong Kong', 'Hungary', 'Iceland', 'India', 'Indonesia',
    'Iran', 'Iraq', 'Ireland', 'Isle of Man', 'Israel', 'Italy', 'Jamaica', 'Japan', 'Jersey', 'Jordan',
    'Kazakhstan', 'Kenya', 'Kiribati', 'Korea', 'Kuwait', 'Kyrgyz Republic',
    "Lao People's Democratic Republic", 'Latvia', 'Lebanon', 'Lesotho', 'Liberia',
    'Libyan Arab Jamahiriya', 'Liechtenstein', 'Lithuania', 'Luxembourg', 'Macao', 'Macedonia',
    'Madagascar', 'Malawi', 'Malaysia', 'Maldives', 'Mali', 'Malta', 'Marshall Islands', 'Martinique',
    'Mauritania', 'Mauritius', 'Mayotte', 'Mexico', 'Micronesia', 'Moldova', 'Monaco', 'Mongolia',
    'Montenegro', 'Montserrat', 'Morocco', 'Mozambique', 'Myanmar', 'Namibia', 'Nauru', 'Nepal',
    'Netherlands', 'Netherlands Antilles', 'New Caledonia', 'New Zealand', 'Nicaragua', 'Niger', 'Nigeria',
    'Niue', 'Norfolk Island', 'Northern Mariana Islands', 'Norway', 'Oman', 'Pakistan', 'Palau',
    'Palestinian Territory', 'Panama', 'Papua New Guinea', 'Paraguay', 'Peru', 'Philippines',
    'Pitcairn Islands', 'Poland', 'Portugal', 'Puerto Rico', 'Qatar', 'Reunion', 'Romania',
    'Russian Federation', 'Rwanda', 'Saint Barthelemy', 'Saint Helena', 'Saint Kitts and Nevis',
    'Saint Lucia', 'Saint Martin', 'Saint Pierre and Miquelon', 'Saint Vincent and the Grenadines',
    'Samoa', 'San Marino', 'Sao Tome and Principe', 'Saudi Arabia', 'Senegal', 'Serbia', 'Seychelles',
    'Sierra Leone', 'Singapore', 'Slovakia (Slovak Republic)', 'Slovenia', 'Solomon Islands', 'Somalia',
    'South Africa', 'South Georgia and the South Sandwich Islands', 'Spain', 'Sri Lanka', 'Sudan',
    'Suriname', 'Svalbard & Jan Mayen Islands', 'Swaziland', 'Sweden', 'Switzerland',
    'Syrian Arab Republic', 'Taiwan', 'Tajikistan', 'Tanzania', 'Thailand', 'Timor-Leste', 'Togo',
    'Tokelau', 'Tonga', 'Trinidad and Tobago', 'Tunisia', 'Turkey', 'Turkmenistan',
    'Turks and Caicos Islands', 'Tuvalu', 'Uganda', 'Ukraine', 'United Arab Emirates', 'United Kingdom',
    'United States Minor Outlying Islands', 'United States Virgin Islands', 'United States of America',
    'Uruguay', 'Uzbekistan', 'Vanuatu', 'Venezuela', 'Vietnam', 'Wallis and Futuna', 'Western Sahara',
    'Yemen', 'Zambia', 'Zimbabwe',
)  # fmt: skip

CATEGORY_WORDS: dict[str, tuple[str, ...]] = {
    "art": _words(
        "art painting watercolor canvas sketch acrylic abstract portrait drawing illustration "
        "gallery gouache mural artist colour brush surreal pop"
    ),
    "beauty": _words(
        "makeup skincare hair nails lipstick eyeliner glow routine serum curls balayage manicure "
        "blush brows lashes cream natural beauty"
    ),
    "christmas": _words(
        "christmas tree ornaments holiday festive gifts wreath santa snow cookies stocking "
        "garland winter decor elf lights xmas cozy"
    ),
    "diy-and-crafts": _words(
        "diy crafts kids paper easy project handmade glue yarn felt tutorial upcycle sewing "
        "crochet printable craft fun wood"
    ),
    "education": _words(
        "teaching classroom students learning math reading science worksheet lesson school "
        "teacher activities kindergarten homeschool grade tips"
    ),
    "event-planning": _words(
        "wedding party planning birthday decorations ideas reception shower venue theme checklist "
        "budget table centerpiece guests"
    ),
    "finance": _words(
        "money budget saving debt investing income frugal tips budgeting finances retirement "
        "credit side hustle challenge plan wealth"
    ),
    "home-decor": _words(
        "home decor living room bedroom kitchen farmhouse cozy interior design wall shelf boho "
        "modern rustic apartment entryway sofa"
    ),
    "mens-fashion": _words(
        "mens fashion style outfit casual suit streetwear jacket shoes denim look wardrobe "
        "classic smart menswear boots watch"
    ),
    "quotes": _words(
        "quotes life love inspirational motivation words wisdom happiness positive sayings "
        "strength truth heart mindset soul hope self"
    ),
    "tattoos": _words(
        "tattoo ink small minimalist sleeve floral wrist line design fineline arm back symbol "
        "rose script tiny meaningful"
    ),
    "travel": _words(
        "travel destinations trip beach adventure guide road europe island itinerary hiking "
        "vacation places wanderlust city mountains budget"
    ),
    "vehicles": _words(
        "car cars truck motorcycle classic vintage jeep porsche custom engine ride wheels garage "
        "luxury sports 4x4 restoration"
    ),
}

COMMON_WORDS: tuple[str, ...] = _words(
    "the best how to make your for with and a of in this easy simple ideas amazing beautiful you "
    "will love new great these ways perfect my our all more that is on get top free today every "
    "little most"
)

FIRST_NAMES: tuple[str, ...] = _words(
    "Aaron Abigail Adam Alexander Alexis Alicia Amanda Amber Amy Andrea Andrew Angela Anthony "
    "Ashley Benjamin Brandon Brian Brittany Caleb Carlos Charles Chelsea Christina Christopher "
    "Cody Courtney Crystal Daniel David Denise Derek Destiny Dylan Edward Elizabeth Emily Eric "
    "Erica Ethan Gabriel Gregory Hannah Heather Isaac Jacob James Jasmine Jason Jeffery Jennifer "
    "Jessica Jonathan Jordan Joseph Joshua Julie Justin Kaitlyn Karen Kathryn Kevin Kimberly "
    "Kristen Laura Lauren Lisa Logan Luis Madison Marcus Maria Mark Matthew Megan Melissa Michael "
    "Michelle Morgan Natalie Nathan Nicholas Nicole Olivia Patrick Paul Rachel Rebecca Richard "
    "Robert Ryan Samantha Sarah Scott Sean Stephanie Steven Taylor Thomas Tiffany Tyler Victoria "
    "William"
)

LAST_NAMES: tuple[str, ...] = _words(
    "Acosta Adams Adkins Aguilar Ali Allen Alvarez Anderson Bailey Baker Barnes Bell Bennett "
    "Brooks Brown Bryant Butler Campbell Carter Castillo Chavez Clark Collins Cook Cooper Cox "
    "Cruz Davis Diaz Dixon Edwards Evans Fisher Flores Foster Garcia Gomez Gonzalez Gray Green "
    "Griffin Hall Harris Hayes Henderson Hernandez Hill Holmes Howard Hughes Jackson James "
    "Jenkins Johnson Jones Kelly Kim King Lee Lewis Long Lopez Martin Martinez Miller Mitchell "
    "Moore Morales Morgan Morris Murphy Myers Nelson Nguyen Ortiz Parker Patel Perez Perry "
    "Peterson Phillips Powell Price Ramirez Reed Reyes Richardson Rivera Roberts Robinson "
    "Rodriguez Rogers Ross Russell Sanchez Sanders Scott Smith Stewart Sullivan Taylor Thomas "
    "Thompson Torres Turner Walker Ward Watson White Williams Wilson Wood Wright Young"
)

UNICODE_WORDS: tuple[str, ...] = (
    "café", "naïve", "Aydoğdu", "Giclée", "São", "Zürich", "crème", "déco", "jalapeño", "façade", "Ørsted",
    "piñata", "fiancée", "🍂", "✨", "🌻", "♡", "•", "–", "—", "№", "😍", "🎄", "Ⓒ", "½",
)  # fmt: skip

CYRILLIC_PHRASES: tuple[str, ...] = (
    "как сделать своими руками", "идеи для дома", "Что вы увидели первым?", "новый год", "красивые цитаты",
)  # fmt: skip

POSTER_SUFFIXES: tuple[str, ...] = (
    "", "", "", " Blog", " Studio", " Designs", " | Lifestyle Blog", " Co.", " & Co", " Magazine", " Home",
    " Creative", " Life", " Diaries", " Daily", " Shop",
)  # fmt: skip
