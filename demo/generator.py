"""Seeded demo content: citizen complaints, letters, posts and work orders over many topics and regions.

Everything is generated from templates here (no real person's data); the same seed gives the same items.
An incident (a chemical-plant smell in one district) builds up over an hour so demos show risk rising.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from core.models import SHANGHAI

CITY = "江城市"
DISTRICTS = ["东湖区", "西岭区", "南江区", "北山区", "高新区", "临港新区", "青石县", "柳河县"]
PLACES = ["幸福家园小区", "锦绣花园", "翠湖苑", "阳光城", "滨江一号", "金桥路", "人民路", "解放大道", "朝阳街道",
          "城南菜市场", "第三中学", "市第一人民医院", "高铁站", "工业园区", "老旧小区", "新华社区"]
DEPARTMENTS = {
    "城乡建设": "市住房和城乡建设局",
    "环境保护": "市生态环境局",
    "交通运输": "市交通运输局",
    "教育文体": "市教育局",
    "劳动和社会保障": "市人力资源和社会保障局",
    "商贸旅游": "市商务局",
    "卫生计生": "市卫生健康委员会",
}

TEMPLATES: dict[str, list[tuple[str, str]]] = {
    "城乡建设": [
        ("{place}小区电梯长期故障无人维修", "{district}{place}的电梯已经坏了{n}天，老人上下楼非常困难，物业一直推脱，希望住建部门督促尽快维修。"),
        ("{place}违章搭建严重影响采光", "{district}{place}有住户在楼顶违章搭建，影响周边居民采光和消防安全，多次反映没有处理，请相关部门依法拆除。"),
        ("{place}商品房延期交房", "我们在{district}{place}购买的商品房合同约定去年交房，至今已延期{n}个月，开发商没有任何说法，请求政府协调。"),
        ("{place}老旧小区改造进度缓慢", "{district}{place}老旧小区改造开工后进度缓慢，道路开挖后长期不恢复，雨天积水严重，出行很不方便。"),
    ],
    "环境保护": [
        ("{place}烧烤店油烟扰民", "{district}{place}楼下的烧烤店每天营业到凌晨，油烟扰民严重，噪音也很大，居民无法正常休息，请环保部门处理。"),
        ("{place}附近工厂夜间偷排废气", "{district}{place}附近的工厂经常夜间偷排废气，气味刺鼻，很多居民出现咳嗽头晕，请生态环境局查处。"),
        ("{place}工地夜间施工噪音扰民", "{district}{place}旁边的工地晚上十一点以后还在施工，噪音扰民，已经持续{n}天，请求依法查处。"),
        ("{place}河道发黑发臭", "{district}{place}旁边的河道最近发黑发臭，有死鱼漂浮，怀疑有企业偷排污水，希望尽快调查。"),
    ],
    "交通运输": [
        ("{place}公交线路调整后出行不便", "{district}{place}的公交线路调整后，最近的站点要走二十分钟，老人孩子出行非常不便，建议恢复原线路。"),
        ("{place}路口红绿灯设置不合理", "{district}{place}路口红绿灯时间太短，早晚高峰严重拥堵，行人过马路也很危险，建议交警部门优化。"),
        ("{place}出租车拒载绕路", "在{district}{place}打车多次遇到出租车拒载和绕路，投诉后没有回音，希望交通部门加强管理。"),
    ],
    "教育文体": [
        ("{place}学校违规补课收费", "{district}{place}的学校周末组织学生补课，每人收费{n}百元，家长不敢拒绝，请教育局调查。"),
        ("{place}学区划分不合理", "{district}{place}今年学区划分调整，孩子要到很远的学校上学，希望教育局公开划分依据。"),
        ("{place}幼儿园学位紧张", "{district}{place}周边只有一所公办幼儿园，学位严重不足，很多孩子上不了学，建议增加学位。"),
    ],
    "劳动和社会保障": [
        ("{place}工地拖欠农民工工资", "我们在{district}{place}的工地干活，包工头拖欠工资{n}万元，过年都拿不到钱，请人社局帮帮我们。"),
        ("公司不给缴纳社保", "我在{district}一家公司上班{n}年，公司一直不给缴纳社会保险，请劳动监察部门查处。"),
        ("退休人员养老金待遇咨询", "我是{district}的退休职工，想咨询今年养老金调整什么时候发放，调整标准是多少。"),
    ],
    "商贸旅游": [
        ("{place}超市销售过期食品", "在{district}{place}的超市买到过期食品，商家拒绝退换，请市场监管部门处理。"),
        ("{place}景区门票价格过高", "{district}{place}景区门票涨价后一百多元，配套设施却很差，建议物价部门核查。"),
        ("{place}预付卡商家跑路", "{district}{place}的健身房突然关门，老板跑路，很多会员的预付卡余额无法退还，金额达{n}万元。"),
    ],
    "卫生计生": [
        ("{place}看病排队时间太长", "在{district}{place}看病挂号排队要几个小时，建议增加医生和自助设备，方便群众就医。"),
        ("{place}医院乱收费", "在{district}{place}住院，收费清单有很多重复收费项目，希望卫健委核查。"),
        ("疫苗接种预约困难", "{district}社区卫生服务中心疫苗预约非常困难，系统经常崩溃，希望改进预约方式。"),
    ],
}

POSITIVE = [
    ("感谢{department}快速解决问题", "前几天反映的{place}问题，{department}第二天就派人来处理了，效率很高，非常感谢！"),
    ("点赞{district}便民服务", "{district}政务服务中心办事很方便，工作人员热情耐心，一次就办好了，点赞！"),
]

INCIDENT = [
    "{district}工业园区化工厂附近闻到刺鼻气味，有点头晕",
    "{district}工业园区化工厂方向冒出黑烟，刺鼻气味越来越重，周围居民都在关窗",
    "紧急！{district}化工厂疑似泄漏，好多人咳嗽呕吐，孩子被送去医院了，政府为什么没有任何通知？",
    "{district}化工厂泄漏已经两个小时了，还没有官方消息，大家都很害怕，有人说要去市政府讨个说法",
    "强烈要求公开{district}化工厂事故真相！已经有几十人送医，官方一直不回应，太让人愤怒了",
]

CHANNELS = ["hotline", "mailbox", "board", "weibo", "wechat"]
REQUEST_TYPES = ["consult", "help", "suggest", "complain", "report"]


@dataclass
class DemoItem:
    """A generated item with the channel it belongs to and an item-shaped payload."""

    channel: str
    topic: str
    payload: dict[str, Any]


class DemoGenerator:
    """Seeded source of demo items; `items(n, now)` spreads them over the past week and adds the incident."""

    def __init__(self, seed: int = 2026) -> None:
        self.rng = random.Random(seed)
        self.counter = 0

    def _fill(self, text: str, district: str, place: str, topic: str) -> str:
        return text.format(district=district, place=place, n=self.rng.randint(2, 30),
                           department=DEPARTMENTS.get(topic, "市政府"))

    def one(self, channel: str, published_at: datetime) -> DemoItem:
        rng = self.rng
        self.counter += 1
        positive = rng.random() < 0.08
        topic = rng.choice(list(TEMPLATES))
        title_t, body_t = rng.choice(POSITIVE if positive else TEMPLATES[topic])
        district, place = rng.choice(DISTRICTS), rng.choice(PLACES)
        title = self._fill(title_t, district, place, topic)
        body = self._fill(body_t, district, place, topic)
        payload: dict[str, Any] = {
            "source_id": f"{channel}-{self.counter:06d}",
            "title": title,
            "content": body,
            "author": f"u{rng.randint(10_000, 99_999)}",
            "published_at": published_at.isoformat(),
            "region": f"{CITY}{district}",
        }
        if channel in ("weibo", "wechat"):
            payload["title"] = "" if channel == "weibo" else title
            payload["content"] = f"#{CITY}# {title}。{body}" if channel == "weibo" else body
            payload["reposts"] = int(rng.paretovariate(1.5)) - 1
            payload["comments"] = int(rng.paretovariate(1.4)) - 1
            payload["likes"] = int(rng.paretovariate(1.2)) - 1
        if channel in ("mailbox", "board", "hotline") and rng.random() < 0.6:
            replied = published_at + timedelta(days=rng.randint(1, 12), hours=rng.randint(0, 8))
            payload["reply"] = {
                "text": f"您好！您反映的问题已收悉。经{DEPARTMENTS.get(topic, '相关部门')}调查核实，已责成相关单位限期整改，感谢您对我们工作的监督。",
                "department": DEPARTMENTS.get(topic, "市政府办公室"),
                "replied_at": replied.isoformat(),
            }
        if channel == "board":
            payload["likes"] = int(rng.paretovariate(1.3)) - 1
            payload["dislikes"] = int(rng.paretovariate(2.5)) - 1
        if channel == "hotline":
            payload["request_type"] = rng.choice(REQUEST_TYPES)
            payload["handling_unit"] = DEPARTMENTS.get(topic, "市政府办公室")
        return DemoItem(channel=channel, topic="positive" if positive else topic, payload=payload)

    def incident(self, start: datetime, minutes: float = 60, count: int = 40) -> list[DemoItem]:
        """Posts about one incident over `minutes`, denser and angrier as it goes on: a few first reports, then a
        burst across Weibo, the 12345 hotline (calls reporting it), the message board and the mayor's mailbox."""
        out = []
        district = "临港新区"
        for i in range(count):
            frac = i / max(count - 1, 1)
            at = start + timedelta(minutes=minutes * frac ** 0.7)
            stage = min(int(frac * len(INCIDENT)), len(INCIDENT) - 1)
            channel = "weibo" if i % 5 else self.rng.choice(["hotline", "board", "mailbox"])
            self.counter += 1
            text = INCIDENT[stage].format(district=district) + f"（{i + 1}）" if i % 3 == 0 else INCIDENT[stage].format(district=district)
            payload = {
                "source_id": f"{channel}-{self.counter:06d}",
                "title": "" if channel == "weibo" else text[:30],
                "content": text,
                "author": f"u{self.rng.randint(10_000, 99_999)}",
                "published_at": at.isoformat(),
                "region": f"{CITY}{district}",
                "reposts": int(10 * (1 + 20 * frac) * self.rng.random()),
                "comments": int(5 * (1 + 20 * frac) * self.rng.random()),
                "likes": int(20 * (1 + 30 * frac) * self.rng.random()),
            }
            if channel == "hotline":  # a call about a leak is a report (举报) for the environment bureau
                payload["request_type"] = "report"
                payload["handling_unit"] = DEPARTMENTS["环境保护"]
            out.append(DemoItem(channel=channel, topic="环境保护", payload=payload))
        return out

    def items(self, count: int, now: datetime | None = None, days: int = 7, with_incident: bool = True) -> list[DemoItem]:
        now = now or datetime.now(SHANGHAI)
        out = []
        for _ in range(count):
            at = now - timedelta(seconds=self.rng.randint(60, days * 86400))
            out.append(self.one(self.rng.choice(CHANNELS), at))
        if with_incident:
            out.extend(self.incident(now - timedelta(minutes=70)))
        return out
