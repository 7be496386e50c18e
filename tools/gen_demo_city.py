"""Generate data/demo-city: a Dongcheng-like district in ~100 m cells, deterministically.

Running it again reproduces byte-identical files (fixed seed, fixed order):
`uv run python tools/gen_demo_city.py [--out DIR]`; libs/city's tests check that the
committed files are exactly what this script writes.

Layout: the 17 real sub-districts of 东城区 in ~100 m cells (0.00117° × 0.0009° at 39.9°N) on
real WGS-84 coordinates. Eight (东华门 … 建国门) are schematic blocks of 10 × 22 cells in a
40 × 44 lattice from lon 116.395 / lat 39.895, each with 6 communities (real names) of 35–40
cells; the other nine are schematic shapes (SHAPED_SUBDISTRICTS) with the lattice clipped to
them and generated community names. Codes follow CJ/T 213 (district 6 + sub-district 3 +
community 3 + cell 4 digits). Ten cells in 景山's first community stand for Jingshan park and
carry an entry list (准入清单). 56 part types, 23,220 parts. data/demo-city/README.md says
which names are real and which are generated.

Other services' tests rely on codes and positions here (cells, supervisors sup-001/002,
cameras, gazetteer entries, the first 4,000 parts): the first random stream and the eight
blocks stay as they are; new things go in the second stream."""

from __future__ import annotations

import csv
import io
import json
import math
import random
from collections.abc import Sequence
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "data" / "demo-city"
DISTRICT = "110101"
LON0, LAT0 = 116.3950, 39.8950
DLON, DLAT = 0.00117, 0.0009  # ~100 m x 100 m at 39.9 N
COLS, ROWS = 40, 44  # 1,760 cells
SUBDISTRICTS = [
    ("001", "东华门街道"),
    ("002", "景山街道"),
    ("003", "交道口街道"),
    ("004", "安定门街道"),
    ("005", "北新桥街道"),
    ("006", "东四街道"),
    ("007", "朝阳门街道"),
    ("008", "建国门街道"),
]
# The other nine sub-districts (the real 17 of 东城区 since 2010; the codes follow the order of
# the statistical division codes). No street or boundary data could be shipped with the demo
# (none was at hand offline), so their shapes are schematic: Voronoi regions around a point
# near each one's real centre, inside three outlines drawn around the eight blocks above
# (north: 和平里; east: 东直门; south: the former 崇文区). Cells are the same ~100 m lattice,
# clipped to those shapes; a sliver under a third of a cell joins its neighbour in the same
# sub-district. Outlines and centres are in lattice units (u, v): lon = LON0 + u * DLON,
# lat = LAT0 + v * DLAT.
SHAPED_SUBDISTRICTS = [
    ("009", "东直门街道", "east", (45.0, 31.0)),
    ("010", "和平里街道", "north", (21.0, 54.0)),
    ("011", "前门街道", "south", (-3.0, -8.0)),
    ("012", "崇文门外街道", "south", (15.0, -7.0)),
    ("013", "东花市街道", "south", (33.0, -6.0)),
    ("014", "龙潭街道", "south", (38.0, -24.0)),
    ("015", "体育馆路街道", "south", (22.0, -22.0)),
    ("016", "天坛街道", "south", (4.0, -22.0)),
    ("017", "永定门外街道", "south", (10.0, -33.0)),
]
SHAPED_OUTLINES = {
    "north": [(8, 44), (34, 44), (37, 52), (31, 64), (13, 64), (6, 54)],
    "east": [(40, 18), (47, 20), (50, 34), (48, 44), (40, 44)],
    "south": [(-10, 0), (45, 0), (46, -14), (44, -28), (36, -38), (-6, -38), (-11, -24)],
}
# streets for the generated addresses of the shaped sub-districts (real streets of each area;
# the house numbers are generated)
SHAPED_STREETS = {
    "009": ["东直门南大街", "东直门北小街", "东中街"],
    "010": ["和平里东街", "和平里西街", "和平里中街", "和平里北街", "安定门外大街"],
    "011": ["前门大街", "前门东大街", "鲜鱼口街"],
    "012": ["崇文门外大街", "崇文门东大街", "西打磨厂街"],
    "013": ["东花市大街", "广渠门内大街"],
    "014": ["龙潭路", "左安门内大街", "夕照寺街"],
    "015": ["体育馆路", "法华寺街", "幸福大街"],
    "016": ["天坛路", "天坛东路", "永定门内大街", "珠市口东大街"],
    "017": ["永定门外大街", "安乐林路"],
}
# parts added over the whole district on top of the first 4,000, per type: 23,220 in all
PART_COUNTS = {
    "P0101": 600, "P0102": 700, "P0103": 400, "P0104": 600, "P0105": 700, "P0106": 300,
    "P0107": 1800, "P0108": 150, "P0109": 800, "P0110": 1000, "P0111": 300, "P0112": 200,
    "P0113": 200, "P0114": 60, "P0115": 150, "P0116": 250, "P0117": 60, "P0118": 40,
    "P0119": 60, "P0120": 400, "P0121": 300,
    "P0201": 120, "P0202": 200, "P0203": 500, "P0204": 600, "P0205": 12, "P0206": 15,
    "P0207": 80, "P0208": 100, "P0209": 40, "P0210": 300, "P0211": 10, "P0212": 20,
    "P0301": 1000, "P0302": 500, "P0303": 60, "P0304": 800, "P0305": 200, "P0306": 200,
    "P0307": 300, "P0308": 30, "P0309": 25,
    "P0401": 3000, "P0402": 300, "P0403": 120, "P0404": 400, "P0405": 200, "P0406": 150,
    "P0407": 10,
    "P0501": 200, "P0502": 250, "P0503": 40, "P0504": 80,
    "P0601": 250, "P0602": 8, "P0603": 30,
}  # fmt: skip
ALL_SUBDISTRICTS = SUBDISTRICTS + [(c, n) for c, n, _, _ in SHAPED_SUBDISTRICTS]
# The sub-districts' names in pinyin, for their offices' English names.
SUBDISTRICT_PINYIN = {
    "001": "Donghuamen",
    "002": "Jingshan",
    "003": "Jiaodaokou",
    "004": "Andingmen",
    "005": "Beixinqiao",
    "006": "Dongsi",
    "007": "Chaoyangmen",
    "008": "Jianguomen",
    "009": "Dongzhimen",
    "010": "Hepingli",
    "011": "Qianmen",
    "012": "Chongwenmenwai",
    "013": "Donghuashi",
    "014": "Longtan",
    "015": "Tiyuguanlu",
    "016": "Tiantan",
    "017": "Yongdingmenwai",
}
COMMUNITY_NAMES = [
    "多福巷",
    "韶九",
    "南池子",
    "北池子",
    "正义路",
    "智德",
    "景山东街",
    "吉祥",
    "黄化门",
    "钟鼓",
    "福祥",
    "南锣鼓巷",
    "菊儿",
    "府学",
    "交东",
    "交北头条",
    "国子监",
    "五道营",
    "钟楼湾",
    "宝钞",
    "北官厅",
    "民安",
    "东四八条",
    "青龙",
    "西总布",
    "遂安伯",
    "演乐",
    "南门仓",
    "朝西",
    "史家",
    "大方家",
    "礼士",
    "八宝坑",
    "贡院",
    "赵家楼",
    "金宝街",
    "站前",
    "崇内",
    "东总布",
    "西单牌",
    "新中街",
    "东四十条",
    "北新仓",
    "前永康",
    "九道湾",
    "民旺",
    "东直门",
    "东中街",
]
STREETS = [
    "东四北大街",
    "东四南大街",
    "朝阳门内大街",
    "交道口南大街",
    "安定门内大街",
    "鼓楼东大街",
    "北新桥三条",
    "东直门内大街",
    "地安门东大街",
    "南锣鼓巷",
    "五四大街",
    "王府井大街",
    "东单北大街",
    "建国门内大街",
    "东长安街",
    "灯市口大街",
    "美术馆后街",
    "雍和宫大街",
]

# (code, name, name_en, major_code, kind, limits, flags)
H = "working_hours"
D = "working_days"
CATEGORIES: list[dict[str, object]] = []


def cat(
    code: str, name: str, en: str, normal: tuple[int, str], urgent: tuple[int, str], **flags: object
) -> None:
    kind = "part" if code.startswith("P") else "event"
    CATEGORIES.append(
        {
            "code": code,
            "name": name,
            "name_en": en,
            "kind": kind,
            "major_code": code[:3],
            "limit_normal": {"amount": normal[0], "unit": normal[1]},
            "limit_urgent": {"amount": urgent[0], "unit": urgent[1]},
            **flags,
        }
    )


# Open311 questions a resident's report of these categories answers (attribute[code]);
# every category also has the built-in urgency and, parts, the part code.
ATTRIBUTES: dict[str, list[dict[str, object]]] = {
    "P0107": [
        {
            "code": "fault",
            "description": "故障现象 / what is wrong",
            "datatype": "singlevaluelist",
            "values": [
                {"key": "dark", "name": "不亮 / not lit"},
                {"key": "flickering", "name": "闪烁 / flickering"},
                {"key": "lit_by_day", "name": "白天常亮 / lit by day"},
                {"key": "damaged", "name": "灯杆灯罩损坏 / pole or lamp damaged"},
            ],
        }
    ],
    "E0104": [
        {
            "code": "volume",
            "description": "垃圾多少 / how much",
            "datatype": "singlevaluelist",
            "values": [
                {"key": "bags", "name": "几袋 / a few bags"},
                {"key": "pile", "name": "一堆 / a pile"},
                {"key": "truckload", "name": "需车辆清运 / a truckload"},
            ],
        }
    ],
    "E0106": [
        {
            "code": "area_m2",
            "description": "占地面积（平方米）/ area covered (m²)",
            "datatype": "number",
            "datatype_description": "约数，平方米 / approximate, square metres",
        }
    ],
    "E0301": [
        {
            "code": "hours",
            "description": "扰民时段 / when",
            "datatype": "multivaluelist",
            "values": [
                {"key": "night", "name": "夜间 22:00–06:00 / at night"},
                {"key": "noon", "name": "午休 12:00–14:00 / at noon"},
                {"key": "day", "name": "白天 / by day"},
            ],
        }
    ],
}

MAJORS = {
    "P01": ("公用设施", "Public utilities"),
    "P02": ("道路交通", "Roads and traffic"),
    "P03": ("市容环境", "Cityscape"),
    "P04": ("园林绿化", "Greening"),
    "P05": ("房屋土地", "Buildings and land"),
    "P06": ("其他设施", "Other facilities"),
    "E01": ("市容环境", "Cityscape"),
    "E02": ("宣传广告", "Advertising"),
    "E03": ("施工管理", "Construction"),
    "E04": ("突发事件", "Emergencies"),
    "E05": ("街面秩序", "Street order"),
    "E06": ("扩展事件", "Other events"),
}
cat(
    "P0101", "上水井盖", "Water supply manhole cover", (4, H), (2, H), auto_accept_from_trusted=True
)
cat("P0102", "污水井盖", "Sewage manhole cover", (4, H), (2, H), auto_accept_from_trusted=True)
cat("P0103", "燃气井盖", "Gas manhole cover", (4, H), (1, H), auto_accept_from_trusted=True)
cat("P0104", "电力井盖", "Power manhole cover", (4, H), (2, H), auto_accept_from_trusted=True)
cat("P0105", "通信井盖", "Telecom manhole cover", (8, H), (4, H), auto_accept_from_trusted=True)
cat("P0106", "消防栓", "Fire hydrant", (1, D), (4, H), auto_accept_from_trusted=True)
cat("P0107", "路灯", "Street lamp", (2, D), (8, H), auto_accept_from_trusted=True)
cat("P0108", "公共厕所", "Public toilet", (1, D), (4, H), auto_accept_from_trusted=True)
cat("P0201", "公交站亭", "Bus shelter", (2, D), (1, D), auto_accept_from_trusted=True)
cat("P0202", "交通信号灯", "Traffic light", (4, H), (2, H), auto_accept_from_trusted=True)
cat("P0203", "道路护栏", "Road railing", (2, D), (1, D), auto_accept_from_trusted=True)
cat("P0204", "交通标志牌", "Traffic sign", (2, D), (1, D), auto_accept_from_trusted=True)
cat("P0301", "垃圾桶", "Litter bin", (1, D), (4, H), auto_accept_from_trusted=True)
cat("P0302", "果皮箱", "Waste box", (1, D), (4, H), auto_accept_from_trusted=True)
cat("P0401", "行道树", "Street tree", (3, D), (1, D), auto_accept_from_trusted=True)
cat("P0402", "绿地护栏", "Green-space fence", (3, D), (1, D), auto_accept_from_trusted=True)
cat("P0501", "公房外立面", "Public building facade", (5, D), (2, D))
cat("P0601", "健身设施", "Fitness equipment", (3, D), (1, D), auto_accept_from_trusted=True)
cat(
    "E0101",
    "私搭乱建",
    "Illegal structure",
    (5, D),
    (2, D),
    requires_confirmation=True,
    close_requires_approval=True,
)
cat("E0102", "积存垃圾渣土", "Accumulated garbage", (1, D), (4, H), video_detectable=True)
cat("E0103", "道路不洁", "Dirty road", (4, H), (2, H), video_detectable=True)
cat(
    "E0104",
    "暴露垃圾",
    "Exposed garbage",
    (4, H),
    (2, H),
    video_detectable=True,
    auto_accept_from_trusted=True,
)
cat("E0105", "焚烧垃圾", "Burning garbage", (2, H), (1, H), video_detectable=True)
cat("E0106", "乱堆物料", "Piled materials", (1, D), (4, H), video_detectable=True)
cat("E0201", "非法小广告", "Illegal small ads", (1, D), (4, H), auto_accept_from_trusted=True)
cat("E0202", "违章张贴悬挂", "Illegal posters and banners", (1, D), (4, H))
cat("E0203", "户外广告破损", "Damaged billboard", (2, D), (4, H))
cat("E0301", "施工扰民", "Construction nuisance", (1, D), (4, H), requires_confirmation=True)
cat("E0302", "施工占道", "Construction blocking road", (1, D), (4, H))
cat("E0303", "道路遗撒", "Spillage on road", (4, H), (2, H), video_detectable=True)
cat("E0401", "燃气泄漏", "Gas leak", (2, "hours"), (1, "hours"), emergency=True)
cat("E0402", "路面塌陷", "Road collapse", (4, "hours"), (2, "hours"), emergency=True)
cat("E0403", "火灾隐患", "Fire hazard", (4, "hours"), (2, "hours"), emergency=True)
cat("E0404", "供水管道破裂", "Burst water main", (4, "hours"), (2, "hours"), emergency=True)
cat("E0501", "无照经营游商", "Unlicensed street vendor", (4, H), (2, H), video_detectable=True)
cat(
    "E0502",
    "店外经营",
    "Business outside shop",
    (4, H),
    (2, H),
    video_detectable=True,
    auto_accept_from_trusted=True,
)
cat("E0503", "机动车乱停放", "Illegal parking", (2, H), (1, H), video_detectable=True)
cat("E0504", "非机动车乱停放", "Disorderly bicycles", (4, H), (2, H), video_detectable=True)
cat("E0505", "占道废品收购", "Scrap collection on road", (4, H), (2, H))
cat("E0601", "邻里纠纷", "Neighbour dispute", (3, D), (1, D), requires_confirmation=True)
cat(
    "E0602",
    "领导交办",
    "Leader referral",
    (3, D),
    (1, D),
    requires_confirmation=True,
    close_requires_approval=True,
)

# 立案条件 / 结案条件 per category (CJ/T 315 style; wording after Beijing's standards).
STANDARDS: dict[str, tuple[str, str]] = {
    "P0101": (
        "上水井盖丢失、破损、错位、有响动，或与路面高差超过2厘米",
        "井盖补齐、更换或复位，盖板平稳无响动，与路面高差不超过1厘米",
    ),
    "P0102": ("污水井盖丢失、破损、错位，或井口污水外溢", "井盖补齐复位，外溢污水清理完毕"),
    "P0103": ("燃气井盖丢失、破损、错位，或井口有燃气异味", "井盖补齐复位，经检测无燃气泄漏"),
    "P0104": ("电力井盖丢失、破损、错位或下沉", "井盖补齐复位，井内无外露带电部件"),
    "P0105": ("通信井盖丢失、破损、错位、下沉，或线缆外露", "井盖补齐复位，线缆规整入井"),
    "P0106": ("消火栓损坏、漏水、标识缺失，或被埋压、圈占", "消火栓完好，出水正常，周边无圈占"),
    "P0107": ("路灯不亮、昼亮，灯杆倾斜破损或灯箱门缺失", "照明恢复，灯杆、灯具和箱门完好"),
    "P0108": (
        "公厕设施损坏、无水、无照明、保洁不到位或未按时开放",
        "设施修复，保洁达标，按时开放",
    ),
    "P0201": ("公交站亭顶棚、座椅、站牌破损或缺失", "站亭修复或更换完毕，完好整洁"),
    "P0202": ("交通信号灯不亮、常亮、灯头损坏或灯杆倾斜", "信号灯恢复正常工作"),
    "P0203": ("道路护栏破损、倾倒、缺失或严重锈蚀", "护栏修复或更换，连续完好"),
    "P0204": ("交通标志牌缺失、倾斜、破损、污损或被遮挡", "标志牌完好清晰，无遮挡"),
    "P0301": ("垃圾桶破损、缺失、满溢或未按时清运", "垃圾桶补齐或清运完毕，周边整洁"),
    "P0302": ("果皮箱破损、缺失或满溢", "果皮箱修复补齐或清掏完毕"),
    "P0401": (
        "行道树倒伏、枯死、断枝或倾斜，影响通行或安全；树池缺失",
        "扶正、补植或修剪完毕，无安全隐患",
    ),
    "P0402": ("绿地护栏破损、倒伏或缺失", "绿地护栏修复完好"),
    "P0501": ("公房外立面墙皮、瓷砖脱落或有坠落危险", "坠落隐患排除并修复，外立面整洁"),
    "P0601": ("健身器材破损、松动或缺失部件，存在安全隐患", "器材修复或更换，安全可用"),
    "E0101": (
        "在道路、公共区域或建筑物上未经批准搭建建筑物、构筑物",
        "违法建设拆除，现场恢复原状",
    ),
    "E0102": (
        "公共区域积存垃圾、渣土，面积超过1平方米或存放超过24小时",
        "垃圾渣土清运完毕，地面无残留",
    ),
    "E0103": ("道路、人行道有明显污物、油渍或积水积冰，保洁不到位", "路面清扫干净，无明显污物"),
    "E0104": ("公共区域有暴露垃圾、卫生死角或散落垃圾袋", "垃圾清理干净，现场整洁"),
    "E0105": ("露天焚烧垃圾、树叶或杂物", "明火熄灭，焚烧残留物清理完毕"),
    "E0106": ("在道路、人行道或公共场所乱堆乱放物料、杂物", "堆物清除，恢复通行"),
    "E0201": ("在建筑物、公共设施上张贴、涂写、喷涂非法小广告", "清除干净，无残留痕迹"),
    "E0202": ("未经批准张贴、悬挂宣传品、横幅或标语", "违章张贴悬挂物拆除完毕"),
    "E0203": ("户外广告、牌匾破损、缺字，或有脱落危险", "修复或拆除，安全隐患消除"),
    "E0301": (
        "夜间（22时至次日6时）未经许可施工，或施工噪声、粉尘影响居民",
        "违规施工停止或已取得许可，扰民消除",
    ),
    "E0302": ("施工超出审批范围占用道路，或未设置围挡、警示标志", "施工在审批范围内，围挡警示规范"),
    "E0303": ("运输车辆遗撒渣土、砂石、泥浆等污染路面", "遗撒物清理干净，路面恢复"),
    "E0401": ("闻到燃气异味，或发现燃气管线、设施泄漏", "泄漏点封堵，经检测浓度正常，现场安全"),
    "E0402": ("道路、人行道出现塌陷、坑洞或明显下沉", "设置围挡并修复完毕，恢复通行"),
    "E0403": (
        "占用、堵塞消防通道，堆放易燃物或电动车违规充电等火灾隐患",
        "隐患消除，消防通道畅通",
    ),
    "E0404": ("供水管道破裂、跑水或路面冒水", "管道修复，恢复供水，现场积水清理完毕"),
    "E0501": ("在道路、广场等公共场所流动无照经营", "无照经营行为消除，现场无遗留"),
    "E0502": ("临街商户超出门窗和外墙摆卖经营或作业", "店外经营消除，物品撤回店内"),
    "E0503": ("机动车在人行道、禁停路段或消防通道违法停放", "车辆驶离或已依法处理"),
    "E0504": ("自行车、共享单车、电动自行车乱停乱放，影响通行", "车辆摆放整齐或清运，恢复通行"),
    "E0505": ("占用道路、公共场所收购、堆放废品", "占道收购行为消除，场地清理干净"),
    "E0601": (
        "居民之间因噪声、漏水、公共空间占用等发生纠纷，需要调解",
        "调解完成，双方认可或已引导进入司法程序",
    ),
    "E0602": (
        "区领导批示交办的城市管理事项，经监督员现场核实属实",
        "按批示要求办结，结果报值班长审核",
    ),
}

PART_OWNERS = {
    "P0101": "water",
    "P0102": "drainage",
    "P0103": "gas",
    "P0104": "power",
    "P0105": "telecom",
    "P0106": "fire",
    "P0107": "lighting",
    "P0108": "sanitation",
    "P0201": "transit",
    "P0202": "traffic-police",
    "P0203": "roads",
    "P0204": "traffic-police",
    "P0301": "sanitation",
    "P0302": "sanitation",
    "P0401": "greening",
    "P0402": "greening",
    "P0501": "housing",
    "P0601": "sports",
}
DEPARTMENTS = [
    ("sanitation", "区环境卫生服务中心", "District Sanitation Service Centre", "bureau"),
    ("water", "自来水集团东城分公司", "Beijing Waterworks, Dongcheng branch", "utility"),
    ("drainage", "北京排水集团东城分公司", "Beijing Drainage Group, Dongcheng branch", "utility"),
    ("gas", "燃气集团东城分公司", "Beijing Gas Group, Dongcheng branch", "utility"),
    ("power", "国网东城供电公司", "State Grid Dongcheng Power Supply", "utility"),
    ("telecom", "通信管线联合办公室", "Telecom Ducts Joint Office", "utility"),
    ("lighting", "区路灯管理所", "District Street Lighting Office", "bureau"),
    ("roads", "区市政道路管理所", "District Municipal Roads Office", "bureau"),
    ("traffic-police", "东城交通支队", "Dongcheng Traffic Police Division", "bureau"),
    ("greening", "区园林绿化局", "District Landscaping and Greening Bureau", "bureau"),
    (
        "urban-mgmt",
        "区城市管理综合行政执法局",
        "District Urban Management and Law Enforcement Bureau",
        "bureau",
    ),
    (
        "housing",
        "区住房和城市建设委员会",
        "District Housing and Urban-Rural Development Commission",
        "bureau",
    ),
    ("market-reg", "区市场监督管理局", "District Market Regulation Bureau", "bureau"),
    ("fire", "东城消防救援支队", "Dongcheng Fire and Rescue Division", "bureau"),
    (
        "transit",
        "公交集团东城客运管理",
        "Beijing Public Transport, Dongcheng operations",
        "utility",
    ),
    ("sports", "区体育局", "District Sports Bureau", "bureau"),
    ("emergency", "区应急管理局", "District Emergency Management Bureau", "bureau"),
]

# The rest of the 56 part types (东城区: 6 大类 56 种): names of CJ/T 214-2007 part types in its
# six classes; the codes are this demo's own numbering within each class (continuing the first
# 18 above), not the standard's numbers. (code, name, name_en, normal, urgent, owner,
# 立案条件, 结案条件)
MORE_PART_TYPES: list[tuple[str, str, str, tuple[int, str], tuple[int, str], str, str, str]] = [
    (
        "P0109",
        "雨水井盖",
        "Storm-water manhole cover",
        (4, H),
        (2, H),
        "drainage",
        "雨水井盖丢失、破损、错位或下沉",
        "井盖补齐复位，盖板平稳，与路面高差不超过1厘米",
    ),
    (
        "P0110",
        "雨水箅子",
        "Storm-water grate",
        (4, H),
        (2, H),
        "drainage",
        "雨水箅子丢失、破损、错位或被杂物堵塞",
        "箅子补齐复位，收水口畅通",
    ),
    (
        "P0111",
        "热力井盖",
        "District-heating manhole cover",
        (4, H),
        (2, H),
        "heating",
        "热力井盖丢失、破损、错位，或井口冒汽",
        "井盖补齐复位，无冒汽",
    ),
    (
        "P0112",
        "电视井盖",
        "Cable-TV manhole cover",
        (8, H),
        (4, H),
        "telecom",
        "电视井盖丢失、破损、错位或下沉",
        "井盖补齐复位，线缆规整入井",
    ),
    (
        "P0113",
        "网络井盖",
        "Network manhole cover",
        (8, H),
        (4, H),
        "telecom",
        "网络井盖丢失、破损、错位或下沉",
        "井盖补齐复位，线缆规整入井",
    ),
    (
        "P0114",
        "无主井盖",
        "Ownerless manhole cover",
        (1, D),
        (4, H),
        "urban-mgmt",
        "权属不明的井盖丢失、破损或错位，存在安全隐患",
        "设置警示并补齐复位，安全隐患消除",
    ),
    (
        "P0115",
        "变压器",
        "Transformer",
        (1, D),
        (4, H),
        "power",
        "变压器（箱）破损、箱门缺失、漏油或有异响",
        "设备修复，箱门完好上锁，无外露带电部件",
    ),
    (
        "P0116",
        "通讯交接箱",
        "Telecom cabinet",
        (2, D),
        (1, D),
        "telecom",
        "通讯交接箱破损、倾斜、箱门缺失或线缆外露",
        "交接箱修复，箱门完好，线缆规整",
    ),
    (
        "P0117",
        "邮筒",
        "Post box",
        (2, D),
        (1, D),
        "post",
        "邮筒破损、倾斜、投信口堵塞或标识不清",
        "邮筒修复或更换，完好可用",
    ),
    (
        "P0118",
        "报刊亭",
        "News kiosk",
        (2, D),
        (1, D),
        "post",
        "报刊亭破损、超范围经营或废弃未拆除",
        "修复、规范经营或拆除完毕",
    ),
    (
        "P0119",
        "公用电话亭",
        "Public telephone booth",
        (2, D),
        (1, D),
        "telecom",
        "公用电话亭破损、倾斜、话机缺失或废弃未拆除",
        "修复或拆除完毕，现场整洁",
    ),
    (
        "P0120",
        "景观灯",
        "Decorative light",
        (2, D),
        (1, D),
        "lighting",
        "景观灯不亮、灯具破损或线路外露",
        "照明恢复，灯具、线路完好",
    ),
    (
        "P0121",
        "监控电子眼",
        "Surveillance camera",
        (2, D),
        (1, D),
        "traffic-police",
        "监控电子眼损坏、倾斜、被遮挡或线路外露",
        "设备修复，工作正常",
    ),
    (
        "P0205",
        "过街天桥",
        "Pedestrian bridge",
        (3, D),
        (4, H),
        "roads",
        "过街天桥桥面、栏杆、台阶破损，或照明、排水设施损坏",
        "修复完毕，通行安全",
    ),
    (
        "P0206",
        "地下通道",
        "Pedestrian underpass",
        (3, D),
        (4, H),
        "roads",
        "地下通道积水、照明损坏、墙地面破损或被占用",
        "修复或清理完毕，通行安全",
    ),
    (
        "P0207",
        "停车场",
        "Car park",
        (3, D),
        (1, D),
        "traffic-police",
        "停车场标志标线缺失、设施破损或超范围占道停车",
        "设施修复，标志标线清晰，停车有序",
    ),
    (
        "P0208",
        "停车咪表",
        "Parking meter",
        (2, D),
        (1, D),
        "traffic-police",
        "停车咪表损坏、倾斜或显示异常",
        "咪表修复或更换，工作正常",
    ),
    (
        "P0209",
        "出租车站牌",
        "Taxi stand sign",
        (2, D),
        (1, D),
        "transit",
        "出租车站牌缺失、倾斜、破损或污损",
        "站牌完好清晰",
    ),
    (
        "P0210",
        "存车支架",
        "Bicycle rack",
        (3, D),
        (1, D),
        "roads",
        "存车支架破损、松动或缺失",
        "存车支架修复或补齐",
    ),
    (
        "P0211",
        "隔音屏",
        "Noise barrier",
        (3, D),
        (1, D),
        "roads",
        "隔音屏破损、松动或有脱落危险",
        "隔音屏修复，安装牢固",
    ),
    (
        "P0212",
        "道路信息显示屏",
        "Road information display",
        (2, D),
        (1, D),
        "traffic-police",
        "道路信息显示屏黑屏、显示错误或箱体破损",
        "显示屏修复，信息显示正常",
    ),
    (
        "P0303",
        "垃圾间（楼）",
        "Refuse room",
        (1, D),
        (4, H),
        "sanitation",
        "垃圾间（楼）破损、垃圾外溢或异味扰民",
        "设施修复，垃圾清运，周边整洁",
    ),
    (
        "P0304",
        "广告牌匾",
        "Shop sign",
        (3, D),
        (4, H),
        "urban-mgmt",
        "广告牌匾破损、缺字、松动或有坠落危险",
        "修复或拆除，安全隐患消除",
    ),
    (
        "P0305",
        "灯箱霓虹灯",
        "Light box and neon sign",
        (3, D),
        (4, H),
        "urban-mgmt",
        "灯箱霓虹灯破损、残缺、不亮或有坠落危险",
        "修复或拆除，亮化完好",
    ),
    (
        "P0306",
        "公厕指示牌",
        "Toilet sign",
        (2, D),
        (1, D),
        "sanitation",
        "公厕指示牌缺失、倾斜、破损或指示错误",
        "指示牌完好，指示准确",
    ),
    (
        "P0307",
        "街头座椅",
        "Street bench",
        (3, D),
        (1, D),
        "urban-mgmt",
        "街头座椅破损、松动或缺失",
        "座椅修复或补齐，安全可用",
    ),
    (
        "P0308",
        "信息亭",
        "Information kiosk",
        (2, D),
        (1, D),
        "telecom",
        "信息亭破损、黑屏或废弃未拆除",
        "修复或拆除完毕",
    ),
    (
        "P0309",
        "城市雕塑",
        "Public sculpture",
        (5, D),
        (1, D),
        "urban-mgmt",
        "城市雕塑破损、污损或基座松动",
        "雕塑修复清洁，基座稳固",
    ),
    (
        "P0403",
        "古树名木",
        "Ancient or notable tree",
        (1, D),
        (4, H),
        "greening",
        "古树名木枯枝、倾斜、病虫害，或保护设施损坏、树下堆物",
        "养护处置完毕，保护设施完好",
    ),
    (
        "P0404",
        "护树设施",
        "Tree guard",
        (3, D),
        (1, D),
        "greening",
        "树池箅子、护树架破损、缺失或松动",
        "护树设施修复或补齐",
    ),
    (
        "P0405",
        "花架花钵",
        "Planter and flower stand",
        (3, D),
        (1, D),
        "greening",
        "花架花钵破损、倾倒、缺失或花卉枯死",
        "花架花钵修复，花卉补植",
    ),
    (
        "P0406",
        "绿地",
        "Green space",
        (3, D),
        (1, D),
        "greening",
        "绿地斑秃、黄土裸露、被践踏占用或堆放杂物",
        "补植复绿，杂物清除",
    ),
    (
        "P0407",
        "喷泉",
        "Fountain",
        (3, D),
        (1, D),
        "greening",
        "喷泉设施损坏、水体污浊或漏电隐患",
        "设施修复，水体清洁，无漏电",
    ),
    (
        "P0502",
        "宣传栏",
        "Notice board",
        (3, D),
        (1, D),
        "urban-mgmt",
        "宣传栏破损、倾斜、内容过期或有坠落危险",
        "修复或更新，安装牢固",
    ),
    (
        "P0503",
        "人防工事",
        "Civil-defence works",
        (2, D),
        (1, D),
        "housing",
        "人防工事出入口破损、积水、违规占用或井盖缺失",
        "隐患消除，出入口完好",
    ),
    (
        "P0504",
        "地下室",
        "Basement",
        (2, D),
        (1, D),
        "housing",
        "地下室违规住人、积水、堆放易燃物或出入口破损",
        "违规使用停止，隐患消除",
    ),
    (
        "P0602",
        "重大危险源",
        "Major hazard installation",
        (4, "hours"),
        (2, "hours"),
        "emergency",
        "重大危险源安全设施损坏、标识缺失或周边有违规作业",
        "安全设施修复，隐患消除，经检查合格",
    ),
    (
        "P0603",
        "工地",
        "Construction site",
        (1, D),
        (4, H),
        "housing",
        "工地围挡破损、出入口无冲洗设施、扬尘或公示牌缺失",
        "围挡修复，冲洗、降尘到位，公示齐全",
    ),
]
for _c, _n, _en, _normal, _urgent, _owner, _acc, _clo in MORE_PART_TYPES:
    cat(_c, _n, _en, _normal, _urgent, auto_accept_from_trusted=_owner != "emergency")
    STANDARDS[_c] = (_acc, _clo)
    PART_OWNERS[_c] = _owner
DEPARTMENTS += [
    (
        "heating",
        "热力集团东城分公司",
        "Beijing District Heating Group, Dongcheng branch",
        "utility",
    ),
    ("post", "邮政东城分公司", "China Post, Dongcheng branch", "utility"),
]


README = """# Demo city: 东城区 (Dongcheng, Beijing)

Generated by `tools/gen_demo_city.py` (deterministic: the same bytes every run). Edit the
script and rerun it rather than editing these files; `libs/city` tests check they match.
Loaded and validated by `gridloop_city.load_city(path)`; every error names file, row, field.

- `district.yaml`: `code` 110101, `name`, `timezone` Asia/Shanghai, `bbox` [min lon, min lat,
  max lon, max lat].
- `subdistricts.csv`: 街道 `code` (district + 3 digits), `name`.
- `communities.csv`: 社区 `code` (sub-district + 3 digits), `name`, `subdistrict_code`.
- `grids.geojson`: ~100 m cells (网格), each a Polygon with `code` (community + 4 digits),
  `name`, `community_code`, `subdistrict_code`, `area_m2`, optional `entry_list` (准入清单:
  the categories the cell takes; absent = every category).
- `categories.yaml`: `majors` (大类 P01…/E01…) and `categories` (小类 P0101…: `kind`
  part/event, `major_code`, `acceptance_standard` 立案条件, `closing_standard` 结案条件,
  `limit_normal`/`limit_urgent` {amount, unit: working_hours, working_days or hours}, flags
  `emergency`, `requires_confirmation`, `close_requires_approval`, `auto_accept_from_trusted`,
  `video_detectable`; optional `attributes`: the Open311 questions a report answers, each
  `code`, `description`, `datatype` string/number/datetime/text/singlevaluelist/
  multivaluelist, `required`, `datatype_description`, `values` [{key, name}] for lists).
- `parts.csv`: 部件 `code` (district + category digits + 6-digit serial), `category_code`,
  `name`, `lon`, `lat`, `cell_code`, `owner_dept`.
- `departments.yaml`: `code`, `name`, optional `name_en` (the console's English), `kind` (bureau,
  utility, subdistrict-office, community), `subdistrict_code`. Every community's residents'
  committee (居委会, `comm-<sub><community>`) is a community-level unit: seed 003's limits
  (1 working day, 3 with other units, never more than 5) apply to what it is given — here
  neighbour disputes (E0601) in its own community.
- `routing.yaml`: ordered `rules`, `category` (code, `E05*`, `P*` or `*`) × `territory` (cell,
  community, sub-district or `*`) → `dept`, `co_handlers`, `lead`. The most specific territory
  wins, then the most specific category, then the earlier rule. `manual`: category ×
  territory entries routed by hand on purpose (the manual dispatch queue; here E0602).
- `calendar.yaml`: office hours, extra holidays and working days, optional `known_through`
  (the last day the city entered the State Council's arrangement for), sign-in timeout, reminder
  fraction, escalation ladder (dispatcher at the deadline, the cell's grid head — `to:
  grid-head`, resolved per case from `users.yaml` — half a working day later, then the
  sub-district leader and the efficiency office), emergency escalation, the manual queue's
  chase (`queue_chase`: dispatcher after 30 minutes, shift leader after 2 hours, clock time:
  the command centre is staffed around the clock), verification and confirmation limits, the
  seed-003 `community_rules` (1/2/3 working days, never more than 5).
- `users.yaml`: `id`, `name`, `roles`, `territory` (codes or `*`), `dept`, `trusted`.
- `supervisors.csv`: `cell_code`, `primary`, `backup`: every cell has its AB pair.
- `gazetteer.csv`: `address`, `lon`, `lat`, `cell_code`.
- `cameras.csv`: `camera_id`, `source`, `lon`, `lat`, `cell_code`.
- `sources.yaml`: integrators: `code`, `name`, `channel` (hotline, video, patrol, web),
  `open311_api_keys`, `min_confidence`, `cooldown_minutes`, `notify` (the case statuses the
  source hears of on `notify.<source>`; not given: every change — the patrol app asks for a
  report's fate and its closing only).
- `intake.yaml`: duplicate distance and window, auto-accept, confirmation channels,
  shift-leader review, reject reasons (zh/en), the mails to reporters (zh/en templates).
- `scoring.yaml`: grades 优/良/中/较差/差, rule sets (Jinhua-style area rules, department
  weights, and for people — supervisors with a monthly minimum of 30 reports, dispatchers with
  dispatch accuracy and time to dispatch), people thresholds, the on-site radius of
  verification (150 m).

Working time: 09:00–12:00 and 13:30–18:00 on the official calendar (chinese_calendar, with
调休); one working day = 7.5 hours of working time; `hours` are clock hours.

`gridloop-city check data/demo-city` reports that this calendar runs out at the end of 2026
(the State Council's 2027 arrangement is not entered yet: until it is, 2027's deadlines follow
the statutory rule and are provisional); everything else passes.

## What is real and what is generated

No street network or official boundary could be shipped with the demo (this repository was
built without network access, and no openly licensed Dongcheng street or boundary data was at
hand), so **the cells are not shaped by the streets**: they are a regular ~100 m lattice
(0.00117° × 0.0009°) on real WGS-84 coordinates, clipped to schematic sub-district shapes.
A city's own cells and boundaries come in through `gridloop-city import`.

- **Sub-districts: real.** All 17 街道 of 东城区 with their real names. Their codes
  110101001–110101017 follow the order of the statistical division codes (统计用区划代码) as
  we remember them; they were not checked against the published table here, so check them
  before relying on them. Their **shapes are schematic**: 东华门 … 建国门 (001–008) are
  blocks of 10 × 22 cells (lon 116.395–116.442, lat 39.895–39.935, not where each really
  lies); 东直门 (009), 和平里 (010) and the seven of the former 崇文区 (011–017) are Voronoi
  regions around a point near each one's real centre, inside outlines drawn east, north and
  south of the blocks; their cells are the lattice clipped to those shapes (a sliver under a
  third of a cell joins the neighbour it shares an edge with; one 65 m² corner touching its
  neighbours at a point only stays a cell of its own). 4,601 cells, about 45 km² (the real
  district: 41.84 km²).
- **Communities: 48 names given as real, 71 generated.** The six communities of each of
  001–008 carry the names the first version of this demo gave as real 东城区 communities (社区)
  (not checked again here: no source at hand); which sub-district each really belongs to was
  not kept (南锣鼓巷 sits in 景山 here, for one). The
  communities of 009–017 have generated names: the sub-district's short name and a number
  (`前门03社区`); they are not real communities.
- **Cells, supervisors, people, departments' names, addresses' house numbers, parts' and
  cameras' positions: generated.** Address streets are real streets of 东城区 (in the nine
  shaped sub-districts, streets of that area).
- **Parts: 23,220 of 56 types** in the six classes of CJ/T 214 (公用设施, 道路交通, 市容环境,
  园林绿化, 房屋土地, 其他设施): 56 is the number of types 东城区's register had (6 大类 56
  种, 168,339 parts); which 56 those were is not known here. The 38 added types are part types
  of CJ/T 214-2007 as far as we recall them (the first 18 include the demo's own, such as
  公房外立面); the codes (P0101 … P0603) are this demo's own numbering inside each class, not
  the standard's numbers (its text was not at hand). The
  first 4,000 parts (18 types, in the eight blocks) are as before; 19,220 more of every type
  lie over the whole district, in realistic proportions (3,000 more street trees, 12
  pedestrian bridges, 8 major hazards). Every type has its acceptance and closing standard,
  its time limits and its owner (routing.yaml routes each to its owner; `P*` catches the rest).
"""


_out = [OUT]


def write(name: str, text: str) -> None:
    (_out[0] / name).write_text(text, encoding="utf-8")


def csv_text(header: list[str], rows: Sequence[Sequence[object]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


# Mail to a reporter who left an e-mail (intake.yaml `mail`): kind → language → subject and
# body with {fields} (gridloop_city.models.MAIL_FIELDS); Chinese required, English beside it.
MAIL_TEMPLATES: dict[str, dict[str, dict[str, str]]] = {
    "accepted": {
        "zh": {
            "subject": "您反映的问题已立案（{case_id}）",
            "body": (
                "您好！\n"
                "\n"
                "您反映的问题（{category}：{description}）已于今日立案，案卷编号 {case_id}。\n"
                "我们将尽快派遣责任单位处置，处置结果会再发邮件告诉您。\n"
                "\n"
                "查看进度：{case_url}\n"
                "\n"
                "{district}城市管理监督中心\n"
            ),
        },
        "en": {
            "subject": "Your report has been accepted ({case_id})",
            "body": (
                "Hello,\n"
                "\n"
                "Your report ({category}: {description}) has been accepted as case {case_id}.\n"
                "It will be sent to the responsible department; "
                "we will write again when it is done.\n"
                "\n"
                "Follow it: {case_url}\n"
                "\n"
                "{district} city management supervision centre\n"
            ),
        },
    },
    "rejected": {
        "zh": {
            "subject": "您反映的问题未予立案（{case_id}）",
            "body": (
                "您好！\n"
                "\n"
                "您反映的问题（{category}：{description}）经审核未予立案。\n"
                "原因：{reason}\n"
                "\n"
                "如有疑问，可拨打 12345 市民服务热线。查看详情：{case_url}\n"
                "\n"
                "{district}城市管理监督中心\n"
            ),
        },
        "en": {
            "subject": "Your report was not accepted ({case_id})",
            "body": (
                "Hello,\n"
                "\n"
                "Your report ({category}: {description}) was not accepted.\n"
                "Reason: {reason}\n"
                "\n"
                "Questions: call the 12345 citizen hotline. Details: {case_url}\n"
                "\n"
                "{district} city management supervision centre\n"
            ),
        },
    },
    "closed": {
        "zh": {
            "subject": "您反映的问题已处理完毕（{case_id}）",
            "body": (
                "您好！\n"
                "\n"
                "您反映的问题（{category}：{description}）已由{dept}处置，经监督员现场核查后结案。\n"
                "处置结果：{result}\n"
                "\n"
                "请您评价处置结果（一次点击即可，链接仅可使用一次）：\n"
                "{rating_url}\n"
                "\n"
                "查看全过程：{case_url}\n"
                "\n"
                "{district}城市管理监督中心\n"
            ),
        },
        "en": {
            "subject": "Your report has been dealt with ({case_id})",
            "body": (
                "Hello,\n"
                "\n"
                "Your report ({category}: {description}) was handled by {dept}, "
                "checked on site by a\n"
                "supervisor and closed.\n"
                "Result: {result}\n"
                "\n"
                "Please rate the result (one click; the link works once):\n"
                "{rating_url}\n"
                "\n"
                "The whole history: {case_url}\n"
                "\n"
                "{district} city management supervision centre\n"
            ),
        },
    },
    "reopened": {
        "zh": {
            "subject": "您反映的问题已重新办理（{case_id}）",
            "body": (
                "您好！\n"
                "\n"
                "您反映的问题（{category}：{description}）已重新交责任单位办理。\n"
                "原因：{reason}\n"
                "\n"
                "查看进度：{case_url}\n"
                "\n"
                "{district}城市管理监督中心\n"
            ),
        },
        "en": {
            "subject": "Your report has been reopened ({case_id})",
            "body": (
                "Hello,\n"
                "\n"
                "Your report ({category}: {description}) has been sent back to the department.\n"
                "Reason: {reason}\n"
                "\n"
                "Follow it: {case_url}\n"
                "\n"
                "{district} city management supervision centre\n"
            ),
        },
    },
}


def yaml_dump(obj: object) -> str:
    import yaml

    return yaml.safe_dump(obj, allow_unicode=True, sort_keys=False, width=100)


def _lonlat(u: float, v: float) -> list[float]:
    return [round(LON0 + u * DLON, 6), round(LAT0 + v * DLAT, 6)]


def _area_m2(geom_lonlat: object) -> int:
    import shapely

    lat = shapely.get_y(shapely.centroid(geom_lonlat))
    return round(float(shapely.area(geom_lonlat)) * 111320 * math.cos(math.radians(lat)) * 110574)


def shaped_cells() -> list[tuple[str, str, list[list[object]]]]:
    """The lattice cells of each shaped sub-district: (sub-district code, name, cells), each cell
    a list of rings' [lon, lat] (exterior only), north to south and west to east."""
    import shapely
    from shapely.geometry import MultiPoint, Polygon, box
    from shapely.geometry.polygon import orient

    out: list[tuple[str, str, list[list[object]]]] = []
    regions: dict[str, object] = {}
    for area, outline in SHAPED_OUTLINES.items():
        poly = Polygon(outline)
        seeds = [(code, pt) for code, _, a, pt in SHAPED_SUBDISTRICTS if a == area]
        if len(seeds) == 1:
            regions[seeds[0][0]] = poly
            continue
        cells = shapely.voronoi_polygons(MultiPoint([pt for _, pt in seeds]), extend_to=poly)
        for code, pt in seeds:
            vor = next(g for g in cells.geoms if g.contains(shapely.Point(pt)))
            regions[code] = vor.intersection(poly)
    for code, name, _, _ in SHAPED_SUBDISTRICTS:
        region = regions[code]
        x0, y0, x1, y1 = (math.floor(b) for b in region.bounds)  # type: ignore[attr-defined]
        pieces: dict[tuple[int, int], object] = {}
        for j in range(y1, y0 - 1, -1):
            for i in range(x0, x1 + 1):
                piece = box(i, j, i + 1, j + 1).intersection(region)
                polys = [g for g in getattr(piece, "geoms", [piece]) if g.geom_type == "Polygon"]
                polys = [g for g in polys if g.area > 1e-6]
                if polys:
                    pieces[(i, j)] = max(polys, key=lambda g: g.area)
        # slivers join the neighbour (same sub-district) they share the longest edge with
        for key in sorted(pieces, key=lambda k: (-k[1], k[0])):
            piece = pieces[key]
            if piece.area >= 1 / 3:  # type: ignore[attr-defined]
                continue
            i, j = key
            best, best_len = None, 0.0
            for nb in ((i - 1, j), (i + 1, j), (i, j - 1), (i, j + 1)):
                other = pieces.get(nb)
                if other is None or other.area < 1 / 3:  # type: ignore[attr-defined]
                    continue
                shared = piece.intersection(other).length  # type: ignore[attr-defined]
                if shared > best_len:
                    best, best_len = nb, shared
            if best is not None and best_len > 1e-6:
                pieces[best] = pieces[best].union(piece)  # type: ignore[attr-defined]
                del pieces[key]
        rings: list[list[object]] = []
        for key in sorted(pieces, key=lambda k: (-k[1], k[0])):
            geom = orient(shapely.normalize(pieces[key]).simplify(0), 1.0)
            ring: list[list[float]] = []
            for u, v in geom.exterior.coords:
                lonlat = _lonlat(u, v)
                if not ring or ring[-1] != lonlat:
                    ring.append(lonlat)
            if ring[0] != ring[-1]:
                ring.append(ring[0])
            assert Polygon(ring).is_valid, (code, key)
            rings.append(ring)  # type: ignore[arg-type]
        out.append((code, name, rings))
    return out


def main(out: Path = OUT) -> None:
    """Write every file of the demo city into `out` (default: data/demo-city)."""
    from shapely.geometry import Point, Polygon

    _out[0] = out
    rnd = random.Random(20261123)
    out.mkdir(parents=True, exist_ok=True)
    write("README.md", README)
    # sub-districts: 4 columns x 2 rows of 10x22 cells; communities: 2x3 per sub-district
    sub_rows, communities, features = [], [], []
    name_i = 0
    cells_of_sub: dict[str, list[str]] = {}
    for si, (sc, sname) in enumerate(SUBDISTRICTS):
        scode = DISTRICT + sc
        sub_rows.append([scode, sname])
        scol, srow = si % 4, si // 4
        for ci in range(6):
            ccode = scode + f"{ci + 1:03d}"
            communities.append([ccode, COMMUNITY_NAMES[name_i] + "社区", scode])
            name_i += 1
            ccol, crow = ci % 2, ci // 2
            n = 0
            # three community rows of 7, 7 and 8 cell rows cover the sub-district's 22
            for r in range(crow * 7, 22 if crow == 2 else (crow + 1) * 7):
                for c in range(ccol * 5, ccol * 5 + 5):
                    gc, gr = scol * 10 + c, srow * 22 + r
                    n += 1
                    code = ccode + f"{n:04d}"
                    x0, y0 = LON0 + gc * DLON, LAT0 + gr * DLAT
                    ring = [
                        [round(x0, 6), round(y0, 6)],
                        [round(x0 + DLON, 6), round(y0, 6)],
                        [round(x0 + DLON, 6), round(y0 + DLAT, 6)],
                        [round(x0, 6), round(y0 + DLAT, 6)],
                        [round(x0, 6), round(y0, 6)],
                    ]
                    props: dict[str, object] = {
                        "code": code,
                        "name": f"{COMMUNITY_NAMES[name_i - 1]}{n:02d}号网格",
                        "community_code": ccode,
                        "subdistrict_code": scode,
                        "area_m2": round(
                            DLON * 111320 * math.cos(math.radians(y0)) * DLAT * 110574
                        ),
                    }
                    # The Palace Museum's east side and Jingshan park: parks take greening and
                    # order cases only (准入清单).
                    if si == 1 and ci == 0 and n <= 10:
                        props["entry_list"] = [
                            "P0401",
                            "P0402",
                            "P0108",
                            "P0301",
                            "E0102",
                            "E0104",
                            "E0501",
                            "E0503",
                        ]
                    features.append(
                        {
                            "type": "Feature",
                            "properties": props,
                            "geometry": {"type": "Polygon", "coordinates": [ring]},
                        }
                    )
                    cells_of_sub.setdefault(scode, []).append(code)
    # the nine shaped sub-districts: communities of about 40 cells in bands north to south
    for sc, sname, rings in shaped_cells():
        scode = DISTRICT + sc
        sub_rows.append([scode, sname])
        short = sname.removesuffix("街道")
        n_comm = max(3, round(len(rings) / 40))
        for ci in range(n_comm):
            ccode = scode + f"{ci + 1:03d}"
            cname = f"{short}{ci + 1:02d}"  # generated, not a real community's name
            communities.append([ccode, cname + "社区", scode])
            band = rings[ci * len(rings) // n_comm : (ci + 1) * len(rings) // n_comm]
            for n, cell_ring in enumerate(band, start=1):
                code = ccode + f"{n:04d}"
                features.append(
                    {
                        "type": "Feature",
                        "properties": {
                            "code": code,
                            "name": f"{cname}社区{n:02d}号网格",
                            "community_code": ccode,
                            "subdistrict_code": scode,
                            "area_m2": _area_m2(Polygon(cell_ring)),
                        },
                        "geometry": {"type": "Polygon", "coordinates": [cell_ring]},
                    }
                )
                cells_of_sub.setdefault(scode, []).append(code)
    lons = [pt[0] for f in features for pt in f["geometry"]["coordinates"][0]]  # type: ignore[index]
    lats = [pt[1] for f in features for pt in f["geometry"]["coordinates"][0]]  # type: ignore[index]
    write(
        "district.yaml",
        yaml_dump(
            {
                "code": DISTRICT,
                "name": "东城区",
                "name_en": "Dongcheng District (demo)",
                "timezone": "Asia/Shanghai",
                # outward to 1e-4° (what `gridloop-city import` writes for these cells)
                "bbox": [
                    math.floor(round(min(lons) * 1e4, 6)) / 1e4,
                    math.floor(round(min(lats) * 1e4, 6)) / 1e4,
                    math.ceil(round(max(lons) * 1e4, 6)) / 1e4,
                    math.ceil(round(max(lats) * 1e4, 6)) / 1e4,
                ],
            }
        ),
    )
    write("subdistricts.csv", csv_text(["code", "name"], sub_rows))
    write("communities.csv", csv_text(["code", "name", "subdistrict_code"], communities))
    write(
        "grids.geojson",
        json.dumps(
            {"type": "FeatureCollection", "features": features},
            ensure_ascii=False,
            separators=(",", ":"),
        )
        + "\n",
    )

    cats = []
    flags = (
        "emergency",
        "requires_confirmation",
        "close_requires_approval",
        "auto_accept_from_trusted",
        "video_detectable",
    )
    for entry in CATEGORIES:
        acc, clo = STANDARDS[str(entry["code"])]
        head = ("code", "name", "name_en", "kind", "major_code")
        cats.append(
            {
                **{k: entry[k] for k in head},
                "acceptance_standard": acc,
                "closing_standard": clo,
                "limit_normal": entry["limit_normal"],
                "limit_urgent": entry["limit_urgent"],
                **{f: bool(entry.get(f, False)) for f in flags},
                **(
                    {"attributes": ATTRIBUTES[entry["code"]]} if entry["code"] in ATTRIBUTES else {}
                ),
            }
        )
    write(
        "categories.yaml",
        yaml_dump(
            {
                "majors": [{"code": k, "name": v[0], "name_en": v[1]} for k, v in MAJORS.items()],
                "categories": cats,
            }
        ),
    )

    # departments: bureaus, utilities, one office per sub-district
    depts = [{"code": c, "name": n, "name_en": e, "kind": k} for c, n, e, k in DEPARTMENTS]
    for sc, sname in ALL_SUBDISTRICTS:
        depts.append(
            {
                "code": f"street-{sc}",
                "name": sname + "办事处",
                "name_en": f"{SUBDISTRICT_PINYIN[sc]} Subdistrict Office",
                "kind": "subdistrict-office",
                "subdistrict_code": DISTRICT + sc,
            }
        )
    # community level (seed 003 社区限时办结): every community's residents' committee (居委会)
    # is a unit of its own, held to 1 working day (3 with other units, never more than 5)
    for ccode, cname, scode in communities:
        depts.append(
            {
                "code": f"comm-{ccode[6:]}",
                "name": cname + "居委会",
                "kind": "community",
                "subdistrict_code": scode,
            }
        )
    write("departments.yaml", yaml_dump({"departments": depts}))

    # routing: part owners come from the part registry; events by class, some by territory
    rules: list[dict[str, object]] = [
        {
            "category": "P*",
            "territory": "*",
            "dept": "urban-mgmt",
            "note": "parts without a registered owner",
        },
        {"category": "E01*", "territory": "*", "dept": "sanitation"},
        {
            "category": "E0101",
            "territory": "*",
            "dept": "urban-mgmt",
            "co_handlers": ["housing"],
            "lead": "urban-mgmt",
        },
        {"category": "E02*", "territory": "*", "dept": "urban-mgmt"},
        {"category": "E03*", "territory": "*", "dept": "housing"},
        {
            "category": "E0303",
            "territory": "*",
            "dept": "sanitation",
            "co_handlers": ["urban-mgmt"],
            "lead": "sanitation",
        },
        {
            "category": "E0401",
            "territory": "*",
            "dept": "gas",
            "co_handlers": ["fire", "emergency"],
            "lead": "gas",
        },
        {
            "category": "E0402",
            "territory": "*",
            "dept": "roads",
            "co_handlers": ["drainage", "traffic-police"],
            "lead": "roads",
        },
        {"category": "E0403", "territory": "*", "dept": "fire"},
        {"category": "E0404", "territory": "*", "dept": "water"},
        {"category": "E05*", "territory": "*", "dept": "urban-mgmt"},
        {"category": "E0503", "territory": "*", "dept": "traffic-police"},
    ]
    # a part case without a part code goes to the category's usual owner (权属单位)
    for code, owner in PART_OWNERS.items():
        rules.append({"category": code, "territory": "*", "dept": owner})
    # sub-district offices (街道) take bicycles and neighbour disputes in their own area
    for sc, _ in ALL_SUBDISTRICTS:
        rules.append({"category": "E0504", "territory": DISTRICT + sc, "dept": f"street-{sc}"})
        rules.append({"category": "E0601", "territory": DISTRICT + sc, "dept": f"street-{sc}"})
    # … but a neighbour dispute is settled first where it happens: the community's own
    # residents' committee (more specific territory than the street office's rule, which
    # stays as the next candidate when the committee returns the case)
    for ccode, _, _ in communities:
        rules.append({"category": "E0601", "territory": ccode, "dept": f"comm-{ccode[6:]}"})
    # community level: 南锣鼓巷 (a tourist lane) handles shops trading outside jointly,
    # led by the street office (联合执法, 牵头单位)
    rules.append(
        {
            "category": "E0502",
            "territory": DISTRICT + "002006",
            "dept": "urban-mgmt",
            "co_handlers": ["market-reg", "street-002"],
            "lead": "street-002",
            "note": "南锣鼓巷: joint enforcement, the street office leads",
        }
    )
    # cell level: inside Jingshan park (the entry-listed cells) the park's greening unit
    # cleans up
    for n in range(1, 11):
        rules.append(
            {
                "category": "E01*",
                "territory": f"{DISTRICT}002001{n:04d}",
                "dept": "greening",
                "note": "inside the park: park management",
            }
        )
    # E0602 (leader referrals) is routed by hand on purpose: the manual dispatch queue.
    manual = [
        {"category": "E0602", "territory": "*", "note": "leader referrals: a dispatcher decides"}
    ]
    write("routing.yaml", yaml_dump({"rules": rules, "manual": manual}))

    write(
        "calendar.yaml",
        yaml_dump(
            {
                "timezone": "Asia/Shanghai",
                "working_hours": [["09:00", "12:00"], ["13:30", "18:00"]],
                "note": "Beijing government office hours (09:00-12:00, 13:30-18:00): a working "
                "day is 7.5 working hours; N working days = N x 7.5 h of working time "
                "(from before opening: due at that day's closing).",
                "extra_holidays": [],
                "extra_holidays_note": "Holidays beyond chinese_calendar's years: the State "
                "Council's arrangement for a year (its holidays and bridge days here, its swapped "
                "working days in extra_workdays, then known_through), entered when published. "
                "Until then the statutory rule decides those years (provisional deadlines).",
                "extra_workdays": [],
                "sign_in_timeout": {"amount": 2, "unit": "working_hours"},
                "reminder_fraction": 0.75,
                "escalation": [
                    {
                        "level": 1,
                        "after": {"amount": 0, "unit": "working_hours"},
                        "to": "dispatcher",
                    },
                    # 网格长: the grid head of the case's cell chases on the ground half a
                    # working day after the deadline, before the sub-district leader (seed 003)
                    {
                        "level": 2,
                        "after": {"amount": 0.5, "unit": "working_days"},
                        "to": "grid-head",
                    },
                    {
                        "level": 3,
                        "after": {"amount": 1, "unit": "working_days"},
                        "to": "subdistrict-leader",
                    },
                    {
                        "level": 4,
                        "after": {"amount": 3, "unit": "working_days"},
                        "to": "efficiency-office",
                    },
                ],
                "emergency_escalation_to": "subdistrict-leader",
                "queue_chase": [
                    {"level": 1, "after": {"amount": 0.5, "unit": "hours"}, "to": "dispatcher"},
                    {"level": 2, "after": {"amount": 2, "unit": "hours"}, "to": "shift-leader"},
                ],
                "verification": {
                    "limit": {"amount": 4, "unit": "working_hours"},
                    "reminder_fraction": 0.75,
                },
                "confirmation": {"limit": {"amount": 2, "unit": "working_hours"}},
                "community_rules": {
                    "community": {"amount": 1, "unit": "working_days"},
                    "subdistrict": {"amount": 2, "unit": "working_days"},
                    "multi_unit": {"amount": 3, "unit": "working_days"},
                    "cap": {"amount": 5, "unit": "working_days"},
                    "immediate": {"amount": 0, "unit": "hours"},
                    "note": "seed 003: 社区1个工作日、街道2个、需其他单位协办3个，"
                    "最长不超过5个工作日；手续完备的居民事项立即办结",
                },
            }
        ),
    )

    # supervisors: ~12 cells each, backup is the next supervisor in the same sub-district
    sup_rows, users = [], []
    sup_n = 0
    for scode, cells in cells_of_sub.items():
        chunks = [cells[i : i + 12] for i in range(0, len(cells), 12)]
        ids = []
        for _ in chunks:
            sup_n += 1
            ids.append(f"sup-{sup_n:03d}")
        for k, chunk in enumerate(chunks):
            for cell in chunk:
                sup_rows.append([cell, ids[k], ids[(k + 1) % len(ids)]])
        for k, sid in enumerate(ids):
            users.append(
                {
                    "id": sid,
                    "name": f"监督员{sid[-3:]}",
                    "roles": ["supervisor"],
                    "territory": [scode],
                    "trusted": k % 3 == 0,
                }
            )
    write("supervisors.csv", csv_text(["cell_code", "primary", "backup"], sup_rows))
    users += [
        {"id": "op-01", "name": "受理员王芳", "roles": ["operator"], "territory": ["*"]},
        {"id": "op-02", "name": "受理员赵磊", "roles": ["operator"], "territory": ["*"]},
        {
            "id": "lead-01",
            "name": "值班长陈静",
            "roles": ["shift-leader", "operator"],
            "territory": ["*"],
        },
        {"id": "disp-01", "name": "派遣员刘洋", "roles": ["dispatcher"], "territory": ["*"]},
        {"id": "disp-02", "name": "派遣员孙悦", "roles": ["dispatcher"], "territory": ["*"]},
        {"id": "eval-01", "name": "考评员周敏", "roles": ["evaluator"], "territory": ["*"]},
        {"id": "admin", "name": "系统管理员", "roles": ["admin"], "territory": ["*"]},
    ]
    # 网格长: each answers for cells (the id is the first cell's code without the district)
    for cells_, name in (
        (["1101010010010001", "1101010010010002"], "网格长吴强"),
        (["1101010010010030"], "网格长郑丽"),
        ([f"{DISTRICT}002001{n:04d}" for n in range(1, 11)], "网格长冯涛"),
        (["1101010070050003", "1101010070050004"], "网格长何静"),
    ):
        users.append(
            {
                "id": f"gh-{cells_[0][6:]}",
                "name": name,
                "roles": ["grid-head"],
                "territory": cells_,
            }
        )
    for d in depts:
        users.append(
            {
                "id": f"{d['code']}-ops",
                "name": f"{d['name']}值班员",
                "roles": ["department"],
                "dept": d["code"],
                "territory": ["*"],
            }
        )
    write("users.yaml", yaml_dump({"users": users}))

    # parts, cameras and addresses inside the district. The first stream (4,000 parts of the
    # first 18 types, 100 cameras, 300 addresses in the eight blocks) is kept as it was: other
    # services' tests use its codes and positions. A second stream adds parts of all 56 types
    # (PART_COUNTS more of each) over the whole district, and cameras and addresses in the
    # nine shaped sub-districts.
    block_features = features[: COLS * ROWS]

    def rand_point() -> tuple[float, float, str]:
        f = rnd.randrange(len(block_features))
        ring = block_features[f]["geometry"]["coordinates"][0]  # type: ignore[index]
        x = ring[0][0] + rnd.uniform(0.05, 0.95) * DLON
        y = ring[0][1] + rnd.uniform(0.05, 0.95) * DLAT
        return round(x, 6), round(y, 6), str(block_features[f]["properties"]["code"])  # type: ignore[index]

    parts: list[list[object]] = []
    serial: dict[str, int] = {}
    part_cats = [pc for pc in CATEGORIES if pc["kind"] == "part"][:18]
    for _ in range(4000):
        chosen = rnd.choice(part_cats)
        code = str(chosen["code"])
        serial[code] = serial.get(code, 0) + 1
        x, y, cell = rand_point()
        parts.append(
            [
                f"{DISTRICT}{code[1:]}{serial[code]:06d}",
                code,
                f"{chosen['name']}",
                x,
                y,
                cell,
                PART_OWNERS[code],
            ]
        )
    cams = []
    for n in range(1, 101):
        x, y, cell = rand_point()
        cams.append([f"cam-{n:04d}", "video-ai", x, y, cell])
    addrs: list[list[object]] = []
    seen: set[str] = set()
    while len(addrs) < 300:
        x, y, cell = rand_point()
        a = f"东城区{rnd.choice(STREETS)}{rnd.randint(1, 200)}号"
        if a in seen:
            continue
        seen.add(a)
        addrs.append([a, x, y, cell])

    rnd2 = random.Random(20261202)
    shapes = [
        (str(f["properties"]["code"]), Polygon(f["geometry"]["coordinates"][0]))  # type: ignore[index]
        for f in features
    ]
    shaped = shapes[COLS * ROWS :]

    inner: dict[str, Polygon] = {}

    def rand_point2(among: list[tuple[str, Polygon]]) -> tuple[float, float, str]:
        """A point well inside a random cell (2 m from its edges: one cell, not two)."""
        code, poly = among[rnd2.randrange(len(among))]
        if code not in inner:
            inner[code] = poly.buffer(-0.00002)
        bx0, by0, bx1, by1 = poly.bounds
        while True:
            x, y = round(rnd2.uniform(bx0, bx1), 6), round(rnd2.uniform(by0, by1), 6)
            if inner[code].contains(Point(x, y)):
                return x, y, code

    by_code = {str(c["code"]): c for c in CATEGORIES}
    for code, count in PART_COUNTS.items():
        for _ in range(count):
            serial[code] = serial.get(code, 0) + 1
            x, y, cell = rand_point2(shapes)
            parts.append(
                [
                    f"{DISTRICT}{code[1:]}{serial[code]:06d}",
                    code,
                    str(by_code[code]["name"]),
                    x,
                    y,
                    cell,
                    PART_OWNERS[code],
                ]
            )
    for n in range(101, 201):
        x, y, cell = rand_point2(shaped)
        cams.append([f"cam-{n:04d}", "video-ai", x, y, cell])
    sub_of = {
        str(f["properties"]["code"]): str(f["properties"]["subdistrict_code"])  # type: ignore[index]
        for f in features
    }
    added = 0
    while added < 300:
        x, y, cell = rand_point2(shaped)
        a = f"东城区{rnd2.choice(SHAPED_STREETS[sub_of[cell][6:]])}{rnd2.randint(1, 200)}号"
        if a in seen:
            continue
        seen.add(a)
        addrs.append([a, x, y, cell])
        added += 1

    parts.sort(key=lambda row: str(row[0]))
    write(
        "parts.csv",
        csv_text(["code", "category_code", "name", "lon", "lat", "cell_code", "owner_dept"], parts),
    )
    write("cameras.csv", csv_text(["camera_id", "source", "lon", "lat", "cell_code"], cams))
    write("gazetteer.csv", csv_text(["address", "lon", "lat", "cell_code"], addrs))

    write(
        "sources.yaml",
        yaml_dump(
            {
                "sources": [
                    {"code": "12345", "name": "12345市民服务热线", "channel": "hotline"},
                    {"code": "96105", "name": "城管热线", "channel": "hotline"},
                    {
                        "code": "video-ai",
                        "name": "视频智能分析平台",
                        "channel": "video",
                        "min_confidence": 0.6,
                        "cooldown_minutes": 30,
                    },
                    {
                        "code": "patrol-app",
                        "name": "城管通巡查终端",
                        "channel": "patrol",
                        # supervisors work their tasks in the app: a report's fate and closing
                        "notify": [
                            "received",
                            "pending_confirmation",
                            "pending_acceptance",
                            "accepted",
                            "rejected",
                            "merged",
                            "reworking",
                            "closed",
                            "recalled",
                        ],
                    },
                    {
                        "code": "web",
                        "name": "市民网站与Open311",
                        "channel": "web",
                        "open311_api_keys": ["demo-open311-key"],
                    },
                ]
            }
        ),
    )
    write(
        "intake.yaml",
        yaml_dump(
            {
                "duplicate": {"distance_m": 50, "window_hours": 72},
                "auto_accept": {"trusted_supervisors": True, "video_min_confidence": 0.85},
                "confirmation_channels": ["hotline"],
                "shift_leader_review": ["E0101", "E0602"],
                "reject_reasons": [
                    {"code": "out-of-district", "zh": "不在本区范围", "en": "outside the district"},
                    {
                        "code": "not-in-entry-list",
                        "zh": "不在网格准入清单",
                        "en": "not on the cell's entry list",
                    },
                    {
                        "code": "not-city-management",
                        "zh": "不属于城市管理范围",
                        "en": "not city management",
                    },
                    {"code": "duplicate", "zh": "重复上报", "en": "duplicate report"},
                    {
                        "code": "insufficient-information",
                        "zh": "信息不全无法核实",
                        "en": "insufficient information",
                    },
                    {"code": "not-confirmed", "zh": "现场核实不存在", "en": "not found on site"},
                    {
                        "code": "below-standard",
                        "zh": "未达立案标准",
                        "en": "below the acceptance standard",
                    },
                ],
                "mail": MAIL_TEMPLATES,
            }
        ),
    )
    write(
        "scoring.yaml",
        yaml_dump(
            {
                "grades": [
                    {"grade": "优", "min": 90},
                    {"grade": "良", "min": 80},
                    {"grade": "中", "min": 70},
                    {"grade": "较差", "min": 60},
                    {"grade": "差", "min": 0},
                ],
                "rule_sets": [
                    {
                        "code": "jinhua",
                        "name": "金华式区域考核",
                        "name_en": "Jinhua-style area assessment",
                        "subject": "area",
                        "rules": [
                            {
                                "measure": "on_time_closure_rate",
                                "kind": "threshold",
                                "at_least": 0.70,
                                "points": 50,
                                "per_point_below": 1,
                            },
                            {
                                "measure": "closure_rate",
                                "kind": "threshold",
                                "at_least": 0.90,
                                "points": 20,
                                "per_point_below": 1,
                            },
                            {
                                "measure": "failed_verifications",
                                "kind": "deduction",
                                "each": 0.2,
                                "from_count": 3,
                                "each_after": 0.5,
                            },
                            {"measure": "falsifications", "kind": "deduction", "each": 1.0},
                            {"measure": "satisfaction_rate", "kind": "weighted", "weight": 30},
                        ],
                    },
                    {
                        "code": "department",
                        "name": "专业部门考核",
                        "name_en": "Department assessment",
                        "subject": "department",
                        "rules": [
                            {"measure": "handling_rate", "kind": "weighted", "weight": 30},
                            {"measure": "on_time_rate", "kind": "weighted", "weight": 30},
                            {"measure": "rework_rate", "kind": "weighted_inverse", "weight": 15},
                            {"measure": "sign_in_on_time_rate", "kind": "weighted", "weight": 10},
                            {
                                "measure": "rated",
                                "kind": "levels",
                                "weight": 15,
                                "levels": {"A": 1.0, "B": 0.8, "C": 0.5, "D": 0.0},
                            },
                        ],
                    },
                    {
                        "code": "supervisors",
                        "name": "监督员岗位考核",
                        "name_en": "Supervisor assessment",
                        "subject": "person",
                        "roles": ["supervisor"],
                        "rules": [
                            # a monthly minimum: 30 reports, each one short costs a point
                            {
                                "measure": "reports",
                                "kind": "minimum",
                                "at_least": 30,
                                "points": 20,
                                "per_unit_below": 1,
                            },
                            {"measure": "valid_report_rate", "kind": "weighted", "weight": 20},
                            {
                                "measure": "missed_report_rate",
                                "kind": "weighted_inverse",
                                "weight": 20,
                            },
                            {
                                "measure": "on_time_verification_rate",
                                "kind": "weighted",
                                "weight": 20,
                            },
                            {
                                "measure": "on_site_verification_rate",
                                "kind": "weighted",
                                "weight": 20,
                            },
                        ],
                    },
                    {
                        "code": "dispatchers",
                        "name": "派遣员岗位考核",
                        "name_en": "Dispatcher assessment",
                        "subject": "person",
                        "roles": ["dispatcher"],
                        "rules": [
                            {"measure": "dispatch_accuracy", "kind": "weighted", "weight": 60},
                            # time to dispatch from the manual queue: half an hour, then each
                            # hour more costs 10
                            {
                                "measure": "queue_hours_avg",
                                "kind": "ceiling",
                                "at_most": 0.5,
                                "points": 40,
                                "per_unit_above": 10,
                            },
                        ],
                    },
                ],
                "people": {
                    "missed_first_responses_per_year": 4,
                    "dissatisfied_per_year": 4,
                    "half_year_satisfaction_min": 80,
                },
                "on_site_radius_m": 150,
            }
        ),
    )


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=OUT, help="output directory")
    main(parser.parse_args().out)
