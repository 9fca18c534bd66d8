"""Personal data masking (个人信息保护法): numbers, e-mail, names, home addresses, authors and payload fields.

Runs before anything is indexed, shown or sent, and on what the quarantine shows. Two passes over a text, each
behind a cheap gate:

- numbers: one regex finds candidate digit runs, landlines and e-mail addresses; each digit run is classified by
  length and checksum (ID card ISO 7064 MOD 11-2, bank cards Luhn) or, for ID numbers with a wrong check character
  and old 15-digit IDs, by their structure (region code and a real birth date), so invoice numbers or dates of the
  same length are left alone. Landlines need a real area code (010, 02X, 0XXX) or, without one, a phone word just
  before them (电话：88888888); 400/800 service numbers are public and stay.
- words: names where citizens write them (我叫张三, 联系人：李四, 王女士, 刘先生, 张某某) and home addresses below the
  street (3栋2单元501室, 88号 after a road, 村X组). Names keep the surname (张三 → 张*) unless the surname is all
  there is (王女士 → *女士); addresses keep the city, district, street, road, estate and village, so region analysis
  still works, and lose the building, unit, room, house and group numbers (雨花区XX小区*栋*单元***室).

Deliberately not masked: officials named with their title (王局长, 胡书记), because a letter to 胡书记 addresses
the office, replies cite the official in their public role, and routing needs it; surnames alone (我姓王); 400/800
numbers. Names need a common surname (SURNAMES) except right after a label with a colon (联系人：谈俊), where the
label itself is the evidence; a name found without a colon must end at a boundary (punctuation, digit, 电话, 男...)
so 我是王府井小区业主 or 举报人曾在… are not names.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import accumulate
from typing import Any

import numpy as np

from core.models import Item, QuarantineRecord
from flow.stages import Batch
from storage.held import hold

# ---- numbers and e-mail -----------------------------------------------------------------------------------------

_AREA = r"0(?:10|2[0-9]|[3-9][0-9]{2})"  # 010, 02X, 0XXX: every mainland area code
# An e-mail address, or a digit run: optionally grouped by spaces or dashes, optionally after +86 or an area code in
# brackets, optionally ending in X for ID cards. What a run is (mobile, ID, bank card, landline, nothing) is decided
# in Python (`_mask_numbers`): one branch for every number kind keeps the scan as fast as it was for mobiles alone.
# The look-ahead names every character either branch can start with (email: its local part; digits: +, 8 of 86, an
# opening bracket or a digit): the regex engine then rejects most positions of a Chinese text with one class test
# instead of trying both branches there (4x faster over the texts the numbers pass sees; the same matches).
_CANDIDATE = re.compile(
    r"(?=[A-Za-z0-9._%+\-(（])"
    r"(?:(?P<email>[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,})"
    r"|(?<![0-9A-Za-z])(?P<digits>(?:\+?86[ \-]?|[(（]0[0-9]{2,3}[)）])?[0-9](?:[ \-]?[0-9]){6,22}[Xx]?)(?![0-9A-Za-z]))"
)
# A landline with its area code: 0731-88888888, (010)12345678, （0755）1234567, 0731 8888888-123, 0731-88888888转123.
_LANDLINE = re.compile(rf"(?P<number>(?:[(（]{_AREA}[)）]|{_AREA}[ \-]?)[1-9][0-9]{{6,7}})(?P<extension>(?:-|转)[0-9]{{1,5}})?")
# Every candidate has 7 digits in a row, two digits around a separator, or an '@': texts with only dates and short
# numbers (2019年9月12日) skip the full pattern. Written to begin with one character set ([0-9@]) so the regex engine
# skips ahead to digits and '@' instead of trying three alternatives at every character (2.5× faster).
_QUICK_NUMBER = r"[0-9@](?:(?<=@)|(?<=[0-9])(?:[0-9]{6}|[ \-][0-9]))"
_PHONE_WORD = re.compile(r"(?:电话|座机|固话|手机|联系方式|[Tt]el|TEL)[^0-9\n]{0,6}$")
_SEPARATORS = re.compile(r"[ \-]")
_NOT_DIGITS = re.compile(r"[^0-9Xx]")
_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_DATE = r"(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])"
# ID numbers that fail the checksum (one digit mistyped) or predate it (15 digits, used until 1999): region, birth date.
_ID_SHAPE = re.compile(rf"[1-8][0-9]{{5}}(?:(?:19|20)[0-9]{{2}}{_DATE}[0-9]{{3}}[0-9Xx]|[0-9]{{2}}{_DATE}[0-9]{{3}})")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"

# ---- names and addresses ----------------------------------------------------------------------------------------

_COMPOUND_SURNAMES = ("欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "令狐", "司徒", "夏侯",
                      "长孙", "宇文", "轩辕", "端木", "西门", "南宫", "独孤", "万俟", "闻人", "申屠", "澹台", "钟离")
# The ~300 most frequent single surnames, without those that are mostly function words in a letter (和 时 向 成 全
# 应 明 安 常 解 连 车 路 党 师 商 单 管 农 被 把 于 之 ...): 向某单位, 和女士 or 我是农民 are not names.
SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖萧田董袁潘蒋蔡余杜叶程苏魏吕丁任沈姚"
            "卢姜崔钟谭陆汪范金石廖贾夏韦付傅方白邹孟熊秦邱江尹薛闫阎段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔汤"
            "温康施文牛樊葛邢齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿兰焦俞左柳甘祝宁符舒阮柯纪梅童凌毕季裴霍涂苗谷"
            "盛曲翁冉骆蓝游辛靳柴蒙鲍华喻祁蒲房滕屈饶牟艾尤穆卓缪简项麦褚娄窦戚岑宫费卜冷晏席卫米柏宗瞿桂佟臧"
            "闵苟邬卞姬仇栾隋刁沙荣巫寇桑郎甄丛仲虞敖巩佘池查麻苑迟邝粟湛揭昝谌冼")
_SURNAME = "(?:" + "|".join(_COMPOUND_SURNAMES) + "|[" + SURNAMES + "])"
# Words that end a name (投诉人刘严联系… → 刘严), and single characters no given name is made of in a letter.
_NAME_STOP = (r"(?:电话|联系|手机|身份|性别|地址|住址|家住|现住|住在|年龄|今年|反映|投诉|举报|先生|女士|小姐|同志|师傅|老师"
              r"|小区|[的在是于和与及了向对被把从为因到也都就又还说称等人市省县镇村路街号栋室楼您你我他她们])")
_GIVEN = rf"(?:(?!{_NAME_STOP})[\u4e00-\u9fff])"
# After a name found without a colon: punctuation, a digit, the end, or a word that starts the next detail.
_NAME_END = (r"(?=[\s，,。.；;、！!？?（()）:：\"“”'‘’]|[0-9]|$"
             r"|电话|联系|手机|身份|性别|男|女|现住|家住|住|年龄|今年|反映|投诉|举报|称|说|来信)")
_LABELS = ("联系人", "姓名", "投诉人", "反映人", "举报人", "来信人", "求助人", "当事人", "申请人", "户主", "收件人",
           "署名", "落款")
_INTROS = ("我叫", "名叫", "名字", "本人", "我是")  # 我名叫 / 本人名叫 reach 名叫; 名字 needs 叫 or 是 after it
_HONORIFICS = ("先生", "女士", "小姐", "某")
_NUMERALS = "0-9一二三四五六七八九十"
_ADDRESS_WORDS = ("栋", "幢", "号", "座", "单元", "室", "房")


# Every name or address match contains one of these triggers; the words pass looks only where they are. Written as
# one leading character set plus look-behind branches, so the regex engine scans for the set in C and tests few
# branches per hit (2× faster than the plain list of words); it accepts a few pairs that are no trigger (投映人), which
# `_word_replacement` then ignores. A test checks that every word of _LABELS, _INTROS and _HONORIFICS is found.
_WORD_ANCHORS = "先女小我名本姓署户落投反举来求当申收联某"
# Branches in the order of their anchors' frequency in letters (我 is the commonest), so most hits fail early.
_WORD_BRANCHES = (r"(?<=[我名])[叫是字]|(?<=[投反举来求当申收联])[诉映报信助事请件系]人|(?<=[先女小])[生士姐]|(?<=本)人"
                  r"|(?<=某)|(?<=[姓署])名|(?<=户)主|(?<=落)款")
_ADDRESS_BRANCHES = rf"(?<=[0-9])(?:[栋幢号座室房]|单元)|(?<=村)[{_NUMERALS}]"
# The look-behinds on the set's character send a digit or 村 straight to the address branches and every other
# anchor to the word branches (whose characters differ from those): a digit, common in letters, no longer fails
# through eight word branches first. The same matches (each character can only ever take one of the two sides).
_TRIGGER = re.compile(rf"[0-9村{_WORD_ANCHORS}](?:(?<=[0-9村])(?:{_ADDRESS_BRANCHES})|(?<![0-9村])(?:{_WORD_BRANCHES}))")
# Words that look like a surname and a given name after 本人 / 我是 / 投诉人 but are not (本人申请，… 本人费用，…).
_NOT_NAMES = frozenset({"申请", "申诉", "申报", "申明", "查明", "查询", "查看", "查实", "费用", "房屋", "房产", "房子", "房间",
                        "金额", "万元", "严重", "马上", "方面", "方便", "高兴", "文件", "程序", "钱款", "温度", "黄金", "江边",
                        "石头", "龙头", "章程", "任务", "任职", "任何", "于是", "车辆", "宁愿", "周边", "周末", "单位"})
_LABEL_SET = frozenset(_LABELS)
_INTRO_SET = frozenset(_INTROS)
_SURNAME_SET = frozenset(SURNAMES)

# After a label: 联系人：李四 / 姓名:谈俊 (after a colon any two or three characters are the name, unless a colon
# follows them: 举报人：姓名：… is a form) or 投诉人周燕，… (without a colon: a known surname and a boundary after it).
_LABEL_NAME = re.compile(rf"(?P<sep>\s*[:：]\s*)(?P<name>{_SURNAME}{_GIVEN}{{1,2}}|{_GIVEN}{{2,3}}(?![:：]){_NAME_END})"
                         rf"|(?P<sep2>\s*)(?P<name2>{_SURNAME}{_GIVEN}{{1,2}}){_NAME_END}")
# After 我叫 / 名叫 / 本人 / 我是 (and 名字叫 / 名字是): a known surname and a boundary after the name.
_INTRO_NAME = re.compile(rf"(?P<sep>[叫是]?\s*)(?P<name>{_SURNAME}{_GIVEN}{{1,2}}){_NAME_END}")
_NOT_A_SOMEBODY = re.compile(r"[些种个天日时年月处地项方次件类样位家届期点段份批]"
                             r"|单位|公司|小区|部门|机构|领导|企业|学校|医院|银行")
# 3栋2单元501室, 3栋501, 12号楼3单元, 2单元501, 501室: building, unit and room (a building alone is a landmark).
# A number after a building is a room unless it is a floor (18层, 19楼), an area (105m2, 90平), a count of households
# (5栋42户), a flat type (08户型), a date or an amount (3栋12月23日开盘, 1栋31+1层).
_ROOM_AFTER = r"(?P<room>[0-9]{2,5})(?![0-9]|层|楼|[mM米平㎡]|户|栋|幢|座|[年月日天个万元%％+＋.．])(?:室|号)?"
_BUILDING = re.compile(rf"(?P<building>[0-9]{{1,4}})(?P<building_word>栋|幢|号楼|座)(?:(?P<unit>[0-9]{{1,2}})单元)?"
                       rf"(?:{_ROOM_AFTER})?")
_UNIT = re.compile(rf"(?P<unit>[0-9]{{1,2}})单元(?:{_ROOM_AFTER})?")
_ROOM = re.compile(r"(?P<room>[0-9]{3,5})[室房](?![间屋子地产价东租贷源型补改管车])")
# 芙蓉路88号, 人民东路398-2号 (not 2号线 or 88号楼): the house number after a road.
_HOUSE = re.compile(r"(?P<house>[0-9]{1,5}(?:[-之][0-9]{1,4})?)号(?!线|文|令|楼|院子)")
_ROADS = frozenset("路街巷弄")
_ROADS2 = frozenset({"大道", "胡同"})
# 茶场村五组, 新安村8组: the group number in a village.
_VILLAGE = re.compile(rf"(?P<group>[{_NUMERALS}]{{1,3}})(?:组|社|队)")
_DIGITS_BEFORE = re.compile(r"[0-9]+$")

_QUICK_NUMBER_RE = re.compile(_QUICK_NUMBER)
# The batch gate: anything the number or the words pass may mask (one charset-first scan over a whole batch). A digit
# that starts no candidate stops at `(?<![0-9])` instead of failing through every word branch (as in `_TRIGGER`).
_QUICK = re.compile(rf"[0-9@村{_WORD_ANCHORS}](?:(?<=[0-9])(?:[0-9]{{6}}|[ \-][0-9]|[栋幢号座室房]|单元)"
                    rf"|(?<![0-9])(?:{_WORD_BRANCHES}|(?<=@)|(?<=村)[{_NUMERALS}]))")

KINDS = ("mobile", "landline", "id_card", "bank_card", "email", "name", "address", "field")

# Payload and `extra` keys whose whole value is personal, whatever it looks like (compared lower-case, '-' as '_').
SENSITIVE_KEYS = frozenset({
    "name", "real_name", "realname", "full_name", "username", "user_name", "nickname", "contact", "contact_name",
    "contact_person", "contacts", "linkman", "complainant", "reporter", "petitioner", "applicant", "xm", "lxr",
    "phone", "mobile", "tel", "telephone", "cellphone", "contact_phone", "contact_tel", "contact_mobile", "phone_number",
    "mobile_phone", "landline", "fax", "sjh", "lxdh", "dh",
    "id_card", "idcard", "id_no", "id_number", "idno", "identity", "identity_card", "id_card_no", "certificate_no",
    "cert_no", "passport", "sfz", "sfzh",
    "address", "addr", "home_address", "contact_address", "residence", "domicile", "dz", "zz", "jtzz",
    "email", "e_mail", "mail", "email_address",
    "bank_card", "bank_account", "card_no", "card_number", "account_no",
    "qq", "wechat", "weixin", "wx", "license_plate", "plate", "car_no",
    "姓名", "联系人", "联系电话", "电话", "手机", "手机号", "身份证", "身份证号", "地址", "住址", "家庭住址", "邮箱",
    "银行卡", "银行卡号", "投诉人", "反映人", "举报人", "来信人",
})
# Author values that name nobody, kept as they are.
_NOBODY = frozenset({"匿名", "匿名用户", "网友", "市民", "群众", "游客", "访客", "未知", "无", "anonymous"})
_MASKED_VALUE = "***"


def id_card_valid(number: str) -> bool:
    """An 18-character resident ID with a correct check character (GB 11643)."""
    if len(number) != 18 or not number[:17].isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == number[17].upper()


def luhn_valid(number: str) -> bool:
    """The Luhn check used by UnionPay and other bank cards."""
    if not number.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _classify(digits: str) -> str | None:
    """Which kind of personal number a separator-free digit string is, if any."""
    n = len(digits)
    if digits.count(digits[0]) == n:
        return None  # 0000000000000000 passes Luhn: a placeholder, not a card
    if n == 11 and _MOBILE.fullmatch(digits):
        return "mobile"
    if n == 13 and digits.startswith("86") and _MOBILE.fullmatch(digits[2:]):
        return "mobile"
    if n == 18 and id_card_valid(digits):
        return "id_card"
    if n in (15, 18) and _ID_SHAPE.fullmatch(digits):
        return "id_card"  # a mistyped check character or an old 15-digit ID is still somebody's ID number
    if 16 <= n <= 19 and digits.isdigit() and luhn_valid(digits):
        return "bank_card"
    return None


def _mask_number(kind: str, digits: str) -> str:
    if kind == "mobile":
        core = digits[-11:]
        return f"{core[:3]}****{core[-4:]}"
    if kind == "id_card":
        return f"{digits[:3]}{'*' * (len(digits) - 7)}{digits[-4:]}"
    return f"{'*' * (len(digits) - 4)}{digits[-4:]}"


_LANDLINE_PARTS = re.compile(rf"([(（]?(?:{_AREA})?[)）]?[ \-]?)([0-9]+)")


def _mask_landline(number: str) -> str:
    """Area code and the last four digits stay (0731-****8888), as for mobiles."""
    m = _LANDLINE_PARTS.fullmatch(number)
    if m is None:
        return "*" * len(number)
    area, local = m.groups()
    return f"{area}{'*' * (len(local) - 4)}{local[-4:]}"


def _mask_email(address: str) -> str:
    user, _, domain = address.partition("@")
    return f"{user[:1]}***@{domain}"


def mask_name(name: str) -> str:
    """张三 → 张*, 欧阳倩 → 欧阳*, a nickname → its first character and stars; 匿名/网友 stay."""
    name = name.strip()
    if not name or name.lower() in _NOBODY or set(name) <= {"*"}:
        return name
    keep = 2 if len(name) > 2 and name[:2] in _COMPOUND_SURNAMES else 1
    return name[:keep] + "*" * max(len(name) - keep, 1)


@dataclass
class MaskResult:
    """Masked text and how many of each kind were masked."""

    text: str
    counts: dict[str, int] = field(default_factory=dict)


def _add(counts: dict[str, int], kind: str) -> None:
    counts[kind] = counts.get(kind, 0) + 1


def _local_phone(text: str, start: int) -> bool:
    """A bare 7- or 8-digit number is a landline only right after a phone word (电话：88888888)."""
    return _PHONE_WORD.search(text, max(0, start - 12), start) is not None


def _mask_numbers(text: str, counts: dict[str, int]) -> str:
    def replace(m: re.Match[str]) -> str:
        if m.group("email"):
            _add(counts, "email")
            return _mask_email(m.group("email"))
        raw = m.group("digits")
        digits = _NOT_DIGITS.sub("", raw[1:] if raw.startswith("+") else raw)
        kind = _classify(digits) if len(digits) >= 11 else None
        if kind:
            _add(counts, kind)
            return _mask_number(kind, digits)
        landline = _LANDLINE.fullmatch(raw)
        if landline:
            _add(counts, "landline")
            return _mask_landline(landline.group("number")) + (landline.group("extension") or "")
        if raw.isdigit() and len(raw) <= 8 and raw[0] != "0" and _local_phone(text, m.start()):
            _add(counts, "landline")
            return _mask_landline(raw)
        if _SEPARATORS.search(raw):
            # Several numbers joined by spaces ("13812345678 13912345678"): judge each group on its own.
            return _mask_groups(raw, counts)
        return raw

    return _CANDIDATE.sub(replace, text)


def _mask_groups(raw: str, counts: dict[str, int]) -> str:
    out = []
    for part in re.split(r"( +)", raw):
        digits = part.replace("-", "")
        kind = _classify(digits) if digits and not part.isspace() else None
        if kind:
            _add(counts, kind)
            out.append(_mask_number(kind, digits))
        else:
            out.append(part)
    return "".join(out)


def _stars(text: str | None) -> str:
    return "*" * len(text) if text else ""


def _name_span(m: re.Match[str] | None, group: str) -> tuple[int, int, str] | None:
    if m is None or not m.group(group) or m.group(group)[:2] in _NOT_NAMES:
        return None
    return m.start(group), m.end(group), mask_name(m.group(group))


def _star_numbers(text: str, found: re.Match[str]) -> str:
    """The matched address with its building, unit and room numbers starred and its words kept (*栋*单元***室)."""
    out, last = [], found.start()
    for group in ("building", "unit", "room"):
        if group in found.re.groupindex and found.group(group):
            out.append(text[last:found.start(group)] + _stars(found.group(group)))
            last = found.end(group)
    out.append(text[last:found.end()])
    return "".join(out)


def _word_replacement(text: str, m: re.Match[str]) -> tuple[int, int, str, str] | None:
    """What one trigger masks: (start, end, replacement, kind), or None when it is not personal there."""
    word, start, end = m.group(), m.start(), m.end()
    if word in _LABEL_SET:
        found = _LABEL_NAME.match(text, end)
        span = _name_span(found, "name") or _name_span(found, "name2")
        return (*span, "name") if span else None
    if word in _INTRO_SET:
        if word == "名字" and not text.startswith(("叫", "是"), end):
            return None
        span = _name_span(_INTRO_NAME.match(text, end), "name")
        return (*span, "name") if span else None
    if word in _HONORIFICS:
        if word == "某":
            if text.startswith("某", end):
                end += 1
            elif _NOT_A_SOMEBODY.match(text, end):
                return None
        if text[max(start - 2, 0):start] in _COMPOUND_SURNAMES:
            return start - 2, end, "**" + text[start:end], "name"
        if start and text[start - 1] in _SURNAME_SET:
            return start - 1, end, "*" + text[start:end], "name"
        return None
    if word[0] == "村":
        found = _VILLAGE.match(text, start + 1)
        return (found.start("group"), found.end("group"), _stars(found.group("group")), "address") if found else None
    if not word[0].isdigit():
        return None  # a pair the trigger scan lets through (名是, 小士) that is no trigger word
    digits = _DIGITS_BEFORE.search(text, max(start - 5, 0), start + 1)
    first = digits.start() if digits else start
    kind = word[1:]
    if kind != "号" and first and text[first - 1] in "-0123456789":
        return None  # part of a longer number (an order or account number), not a building or room
    if kind in ("栋", "幢", "座") or (kind == "号" and text.startswith("楼", end)):
        found = _BUILDING.match(text, first)
        if found is None or not (found.group("unit") or found.group("room")):
            return None  # 3栋 alone names a building of an estate, not a home
        return found.start(), found.end(), _star_numbers(text, found), "address"
    if kind == "单元":
        found = _UNIT.match(text, first)
        if found is None or not found.group("room"):
            return None
        return found.start(), found.end(), _star_numbers(text, found), "address"
    if kind in ("室", "房"):
        found = _ROOM.match(text, first)
        if found is None:
            return None
        return found.start("room"), found.end("room"), _stars(found.group("room")), "address"
    # 号: a house number when a road comes right before the number (88号 after 芙蓉路), else a date or a ticket.
    house = first
    while house and (text[house - 1].isdigit() or text[house - 1] in "-之"):
        house -= 1
    if not (house and (text[house - 1] in _ROADS or text[max(house - 2, 0):house] in _ROADS2)):
        return None
    found = _HOUSE.match(text, house)
    return (found.start("house"), found.end("house"), _stars(found.group("house")), "address") if found else None


def _mask_words(text: str, counts: dict[str, int], start: int = 0) -> str:
    """Names and addresses, looked for only where a trigger word is (see `_TRIGGER`), from `start` on (no trigger
    begins before it: the caller's gate says so)."""
    out: list[str] = []
    done = 0
    for m in _TRIGGER.finditer(text, start):
        if m.start() < done:
            continue  # inside what an earlier trigger masked (the 2单元 of 3栋2单元501室)
        found = _word_replacement(text, m)
        if found is None or found[0] < done:
            continue
        start, end, replacement, kind = found
        out.append(text[done:start])
        out.append(replacement)
        done = end
        _add(counts, kind)
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)


# Which passes a text needs: (numbers, words). The stage knows it from its batch scan; alone, `_passes` finds out.
Passes = tuple[bool, bool]
_NO_PASS: Passes = (False, False)


def _passes(text: str) -> Passes:
    if not text or not _QUICK.search(text):
        return _NO_PASS
    return _QUICK_NUMBER_RE.search(text) is not None, _TRIGGER.search(text) is not None


def _is_number_hit(hit: str) -> bool:
    """Whether a `_QUICK` match calls for the numbers pass (7 digits, digits around a separator, '@') rather than
    the words pass (a trigger word, 3栋, 村五)."""
    return hit[0] in "0123456789@" and hit[-1] in "0123456789@"


def mask_text(text: str, passes: Passes | None = None, words_from: int = 0) -> MaskResult:
    """Mask every personal number, e-mail address, citizen's name and home address in `text` (see the module doc).
    `passes` (numbers, words), when the caller's own scan already knows which are needed, saves the checks;
    `words_from`, where the caller's gate (`_QUICK`) first matched in the text: no trigger word begins before it
    (`_QUICK` matches wherever `_TRIGGER` does), so the words pass need not scan the text before it again, unless the
    numbers pass changed the text."""
    numbers, words = _passes(text) if passes is None else passes
    if not (numbers or words):
        return MaskResult(text)
    counts: dict[str, int] = {}
    if numbers:
        masked = _mask_numbers(text, counts)
        if masked != text:
            words_from = 0  # positions may have moved
        text = masked
    if words:
        text = _mask_words(text, counts, words_from)
    return MaskResult(text, counts)


# Words that make any key sensitive wherever they occur in it (contactPhone, home_addr, applicant_id_card, 联系电话2).
_SENSITIVE_KEY_WORDS = frozenset({"phone", "phones", "mobile", "mobiles", "tel", "telephone", "cellphone", "email",
                                  "emails", "mail", "address", "addr", "idcard", "passport", "wechat", "qq"})
_SENSITIVE_KEY_STEMS = ("电话", "手机", "身份证", "地址", "住址", "姓名", "邮箱", "银行卡", "id_card", "id_no", "bank_card")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_KEY_SPLIT = re.compile(r"[^a-z0-9]+")


@lru_cache(maxsize=4096)
def _sensitive_key(key: Any) -> bool:
    """A key whose whole value is personal: a known key, a key with a personal word in it (contactPhone), or a
    Chinese or compound stem (联系电话, applicant_id_card). Cached: an import asks it of the same few keys for every
    item (`backfill`), and the answer cost two regex passes and a dozen searches (~12,000 instructions)."""
    if not isinstance(key, str):
        return False
    normal = key.strip().lower().replace("-", "_")
    if normal in SENSITIVE_KEYS or any(stem in normal for stem in _SENSITIVE_KEY_STEMS):
        return True
    return any(word in _SENSITIVE_KEY_WORDS for word in _KEY_SPLIT.split(_CAMEL.sub("_", key.strip()).lower()))


def _mask_whole(value: Any) -> Any:
    """A value under a sensitive key: every leaf replaced, the shape kept (so consumers still parse it)."""
    if isinstance(value, dict):
        return {k: _mask_whole(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_whole(v) for v in value]
    if value is None or isinstance(value, bool) or value == "":
        return value
    return _MASKED_VALUE


def mask_value(value: Any, counts: dict[str, int] | None = None, key: Any = None) -> Any:
    """Any JSON-like value masked: strings through `mask_text`, everything under a sensitive key (SENSITIVE_KEYS)
    wholly, `author` like a name, nested dicts and lists all the way down. Returns a new value; `counts` gathers
    how many of each kind were masked (a wholly masked key counts once, as 'field')."""
    counts = {} if counts is None else counts
    if key is not None and _sensitive_key(key):
        masked = _mask_whole(value)
        if masked != value:
            _add(counts, "field")
        return masked
    if isinstance(value, str):
        if key == "author":
            masked_author = mask_name(value)
            if masked_author != value:
                _add(counts, "name")
            return masked_author
        result = mask_text(value)
        for kind, n in result.counts.items():
            counts[kind] = counts.get(kind, 0) + n
        return result.text
    if isinstance(value, dict):
        return {k: mask_value(v, counts, k) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_value(v, counts) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1_000_000:
        result = mask_text(str(value))  # a phone or card number given as a JSON number
        if result.counts:
            _merge(counts, result.counts)
            return result.text
    return value


def _merge(into: dict[str, int], counts: dict[str, int]) -> None:
    for k, v in counts.items():
        into[k] = into.get(k, 0) + v


def mask_item(item: Item, keep_raw: bool = False, *, title: Passes | None = None,
              content: Passes | None = None, title_from: int = 0, content_from: int = 0) -> dict[str, int]:
    """Mask title, content, reply text, author and every string of `extra` in place; returns counts per kind (empty
    when nothing was found). With `keep_raw` the original values of the changed fields are handed to the store
    (`storage.held.hold`, beside the item, never in it), which keeps them apart (`item_originals`, read
    through `store.original(item_id)`). `title` and `content`: the passes each needs, when the caller knows;
    `title_from` and `content_from`: where the caller's gate first matched in each (`mask_text`'s `words_from`)."""
    counts: dict[str, int] = {}
    originals: dict[str, Any] = {}

    def masked_text(name: str, value: str, passes: Passes | None = None, words_from: int = 0) -> str | None:
        """The masked text, or None when nothing was masked (assigning a pydantic field costs: only on change)."""
        result = mask_text(value, passes, words_from)
        if not result.counts:
            return None
        originals[name] = value
        _merge(counts, result.counts)
        return result.text

    fields = item.__dict__  # values read off the model's dict (no pydantic __getattr__ hook); set as attributes
    if title != _NO_PASS and (masked := masked_text("title", fields["title"], title, title_from)) is not None:
        item.title = masked
    if content != _NO_PASS and (masked := masked_text("content", fields["content"], content, content_from)) is not None:
        item.content = masked
    if (reply_of := fields["reply"]) is not None and reply_of.text and (
            reply := masked_text("reply", reply_of.text)) is not None:
        reply_of.text = reply
    if author_of := fields["author"]:
        author = mask_name(author_of)
        if author != author_of:
            originals["author"] = author_of
            item.author = author
            _add(counts, "name")
    done = fields["extra"].get("pii_masked")
    extra = {k: v for k, v in fields["extra"].items() if k != "pii_masked"}
    if extra:
        extra_counts: dict[str, int] = {}
        masked_extra = mask_value(extra, extra_counts)
        if extra_counts:
            originals["extra"] = extra
            item.extra = masked_extra if done is None else {**masked_extra, "pii_masked": done}
            _merge(counts, extra_counts)
    if counts:
        item.extra["pii_masked"] = {**done, **counts} if done else counts
        if keep_raw:
            hold(item, originals)
    return counts


def mask_quarantine(record: QuarantineRecord) -> QuarantineRecord:
    """The record as it may be shown (API, CLI): payload, reason and origin masked like an item. The store keeps
    the record as received, so it can be re-processed; only what is shown is masked."""
    payload = mask_value(record.payload)
    return record.model_copy(update={"payload": payload, "reason": mask_text(record.reason).text,
                                     "origin": mask_text(record.origin).text})


# Code point → how it may begin a `_QUICK` match: 1 a digit (only when 7 digits run from it or one of `_DIGIT_NEXT`
# follows it). 4 marks `_DIGIT_NEXT`.
_QUICK_TABLE = np.zeros(0x10000, dtype=np.uint8)
_QUICK_TABLE[[ord(c) for c in "0123456789"]] = 1
_DIGIT_NEXT = " -栋幢号座室房单"  # what follows a digit that starts a match other than seven digits
_QUICK_TABLE[[ord(c) for c in _DIGIT_NEXT]] |= 4
# The other characters of `_QUICK`'s first set begin a match only before a character their branch goes on with (我
# before 叫是字, 小 before 生士姐, 村 before a numeral; 某 and @ alone are a match). The groups (anchors → what must
# follow) are read from the branches themselves, so the gate cannot drift from the regex and let a name through. Each
# group is a bit: `_ANCHOR_BITS` gives an anchor its group's bit, `_NEXT_BITS` a character the bits of the groups it
# goes on; every character carries the bit of the branches that need nothing after their anchor. Common anchors (我,
# 小, 来, 当) mostly stand before other characters: they are no longer tried with the regex.


def _anchor_groups(branches: str) -> tuple[list[tuple[str, str]], str]:
    """(anchors, the characters that may follow them) per branch `(?<=[anchors])[next]…` or `(?<=a)b…`, and the
    anchors of the branches `(?<=a)` that match with nothing after them."""
    def chars(group: str) -> str:
        return re.sub(r"(.)-(.)", lambda m: "".join(map(chr, range(ord(m[1]), ord(m[2]) + 1))), group)

    groups, alone = [], ""
    for branch in branches.split("|"):
        found = re.fullmatch(r"\(\?<=(\[[^]]+\]|.)\)(\[[^]]+\]|.)?.*", branch)
        if found is None:
            raise ValueError(f"PII gate: a branch of unexpected form {branch!r}")
        anchors, following = chars(found[1].strip("[]")), found[2]
        if following is None:
            alone += anchors
        else:
            groups.append((anchors, chars(following.strip("[]"))))
    return groups, alone


_ANCHOR_GROUPS, _ALONE = _anchor_groups(rf"{_WORD_BRANCHES}|(?<=@)|(?<=村)[{_NUMERALS}]")
if len(_ANCHOR_GROUPS) > 15:
    raise ValueError("PII gate: more branches than the 16 bits of its tables hold")
_ANCHOR_BITS = np.zeros(0x10000, dtype=np.uint16)
_NEXT_BITS = np.full(0x10000, 1 << len(_ANCHOR_GROUPS), dtype=np.uint16)
_ANCHOR_BITS[[ord(c) for c in _ALONE]] = 1 << len(_ANCHOR_GROUPS)
for _bit, (_anchors, _next) in enumerate(_ANCHOR_GROUPS):
    _ANCHOR_BITS[[ord(c) for c in _anchors]] |= 1 << _bit
    _NEXT_BITS[[ord(c) for c in _next]] |= 1 << _bit
del _bit, _anchors, _next
# The three tables in one, so that a batch's code points are looked up once (a gather costs ~12 instructions a
# character, the shifts and masks that take the fields apart one or two): `_QUICK_TABLE` in bits 0-7, `_NEXT_BITS` in
# 8-23, `_ANCHOR_BITS` in 24-39.
_GATE_TABLE = (_QUICK_TABLE.astype(np.uint64) | _NEXT_BITS.astype(np.uint64) << np.uint64(8)
               | _ANCHOR_BITS.astype(np.uint64) << np.uint64(24))


def _quick_matches(joined: str) -> list[re.Match[str]]:
    """`_QUICK.finditer(joined)`, its match attempts limited to where a match can begin (numpy over the code
    points): the regex tested every character of the batch against its first set (~2 % of the enrichment). A
    digit begins one only before six more digits or before one of `_DIGIT_NEXT`, another character of its first set
    only before what its branch goes on with (`_ANCHOR_GROUPS`). Tried in order from the end of the last match, as
    finditer does; look-behinds still see the text before each start."""
    cp = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    if len(cp) != len(joined) or (len(cp) and int(cp.max()) > 0xFFFF):
        return list(_QUICK.finditer(joined))
    packed = np.take(_GATE_TABLE, cp)  # take: half the time of table[cp]
    kinds = (packed & np.uint64(0xFF)).astype(np.uint8)
    digit = kinds == 1
    following = np.empty(len(cp), dtype=np.uint64)  # `_NEXT_BITS` of the next character (at the end: 某 and @ only)
    np.right_shift(packed[1:], np.uint64(8), out=following[:-1])
    following[-1:] = 1 << len(_ANCHOR_GROUPS)
    word = ((packed >> np.uint64(24)) & following & np.uint64(0xFFFF)).astype(bool)
    run = np.zeros(len(cp) + 1, dtype=np.int64)
    np.cumsum(digit, out=run[1:])
    seven = np.zeros(len(cp), dtype=bool)
    if len(cp) >= 7:
        seven[:len(cp) - 6] = run[7:] - run[:-7] == 7
    followed = np.zeros(len(cp), dtype=bool)
    followed[:-1] = (kinds[1:] & 4).astype(bool)
    starts = np.flatnonzero(word | (digit & (seven | followed))).tolist()
    out: list[re.Match[str]] = []
    match = _QUICK.match
    end = 0
    for start in starts:
        if start >= end and (m := match(joined, start)) is not None:
            out.append(m)
            end = m.end()
    return out


class PiiMaskStage:
    """First enrichment stage: personal data never reaches the index, the API or a notification.

    `flow.ingest.STAGES` runs it before the exact-duplicate check, so a re-crawl is compared masked to masked
    (the stored copy is masked; comparing the raw re-crawl would see a change every time)."""

    name = "pii_mask"

    def __init__(self, keep_raw: bool = False) -> None:
        self.keep_raw = keep_raw

    def run(self, batch: Batch) -> None:
        """Only items whose title or content may hold personal data (one `_QUICK` pass over the whole batch, its
        texts joined by newlines, which no candidate can span), or that carry a reply, an author or `extra`, go
        through `mask_item`."""
        items = batch.items
        if not items:
            return
        fields = [item.__dict__ for item in items]  # field values read off the dict: no pydantic __getattr__ hook
        texts = [text for f in fields for text in (f["title"] or "", f["content"] or "")]
        joined = "\n".join(texts)
        numbers: set[int] = set()  # indexes into `texts` of the texts that need each pass
        words: set[int] = set()
        first: dict[int, int] = {}  # index into `texts` → where in that text its first gate match begins
        if _QUICK.search(joined):
            ends = list(accumulate(len(t) + 1 for t in texts))  # end (exclusive, with its newline) of each text
            for m in _quick_matches(joined):
                at = m.start()
                which = bisect_right(ends, at)
                (numbers if _is_number_hit(m.group()) else words).add(which)
                if which not in first:  # matches come in order: the first is the leftmost
                    first[which] = at - (ends[which - 1] if which else 0)
        for i, (item, f) in enumerate(zip(items, fields, strict=True)):
            t, c = 2 * i, 2 * i + 1
            if t in numbers or t in words or c in numbers or c in words or f["author"] or f["extra"] or (
                    f["reply"] is not None and f["reply"].text):
                mask_item(item, self.keep_raw, title=(t in numbers, t in words), content=(c in numbers, c in words),
                          title_from=first.get(t, 0), content_from=first.get(c, 0))
