"""Generate data/demo-city: a Dongcheng-like district in ~100 m cells, deterministically.

Running it again reproduces byte-identical files (fixed seed, sorted output)."""

from __future__ import annotations

import csv
import io
import json
import math
import random
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

STANDARDS = {
    "P": (
        "部件缺失、破损、移位或功能异常，影响使用或安全",
        "部件恢复完好，功能正常，现场无安全隐患",
    ),
    "E01": ("问题位于公共区域，面积或影响达到立案标准", "现场清理干净，恢复整洁"),
    "E02": ("在公共设施、建筑物上违规张贴、涂写、悬挂", "清除干净，无残留痕迹"),
    "E03": ("施工作业违反管理规定，影响通行或环境", "施工行为规范，现场恢复"),
    "E04": ("存在危及公共安全的紧急情况", "险情排除，现场安全"),
    "E05": ("占用道路、公共场所经营或停放，影响通行和市容", "占道行为消除，恢复通行"),
    "E06": ("属于网格管理职责范围的其他事项", "问题解决，当事人认可"),
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
    ("sanitation", "区环境卫生服务中心", "bureau"),
    ("water", "自来水集团东城分公司", "utility"),
    ("drainage", "北京排水集团东城分公司", "utility"),
    ("gas", "燃气集团东城分公司", "utility"),
    ("power", "国网东城供电公司", "utility"),
    ("telecom", "通信管线联合办公室", "utility"),
    ("lighting", "区路灯管理所", "bureau"),
    ("roads", "区市政道路管理所", "bureau"),
    ("traffic-police", "东城交通支队", "bureau"),
    ("greening", "区园林绿化局", "bureau"),
    ("urban-mgmt", "区城市管理综合行政执法局", "bureau"),
    ("housing", "区住房和城市建设委员会", "bureau"),
    ("market-reg", "区市场监督管理局", "bureau"),
    ("fire", "东城消防救援支队", "bureau"),
    ("transit", "公交集团东城客运管理", "utility"),
    ("sports", "区体育局", "bureau"),
    ("emergency", "区应急管理局", "bureau"),
]


def write(name: str, text: str) -> None:
    (OUT / name).write_text(text, encoding="utf-8")


def csv_text(header: list[str], rows: list[list[object]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def yaml_dump(obj: object) -> str:
    import yaml

    return yaml.safe_dump(obj, allow_unicode=True, sort_keys=False, width=100)


def main() -> None:
    rnd = random.Random(20261123)
    OUT.mkdir(parents=True, exist_ok=True)
    write(
        "district.yaml",
        yaml_dump(
            {
                "code": DISTRICT,
                "name": "东城区",
                "name_en": "Dongcheng District (demo)",
                "timezone": "Asia/Shanghai",
                "bbox": [LON0, LAT0, round(LON0 + COLS * DLON, 6), round(LAT0 + ROWS * DLAT, 6)],
            }
        ),
    )
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
    for c in CATEGORIES:
        key = "P" if str(c["code"]).startswith("P") else str(c["code"])[:3]
        acc, clo = STANDARDS[key]
        cats.append({**c, "acceptance_standard": acc, "closing_standard": clo})
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
    depts = [{"code": c, "name": n, "kind": k} for c, n, k in DEPARTMENTS]
    for sc, sname in SUBDISTRICTS:
        depts.append(
            {
                "code": f"street-{sc}",
                "name": sname + "办事处",
                "kind": "subdistrict-office",
                "subdistrict_code": DISTRICT + sc,
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
    for sc, _ in SUBDISTRICTS:
        rules.append({"category": "E0504", "territory": DISTRICT + sc, "dept": f"street-{sc}"})
        rules.append({"category": "E0601", "territory": DISTRICT + sc, "dept": f"street-{sc}"})
    # E0602 (leader referrals) is routed by hand on purpose: the manual dispatch queue.
    write("routing.yaml", yaml_dump({"rules": rules}))

    write(
        "calendar.yaml",
        yaml_dump(
            {
                "timezone": "Asia/Shanghai",
                "working_hours": [["09:00", "12:00"], ["13:30", "18:00"]],
                "note": "Beijing government office hours; a working day is 7.5 working hours.",
                "extra_holidays": [
                    "2027-01-01",
                    "2027-02-05",
                    "2027-02-06",
                    "2027-02-07",
                    "2027-02-08",
                    "2027-04-05",
                    "2027-05-01",
                    "2027-05-02",
                    "2027-06-09",
                    "2027-09-15",
                    "2027-10-01",
                    "2027-10-02",
                    "2027-10-03",
                ],
                "extra_holidays_note": "2027 statutory days (全国年节及纪念日放假办法, 2024); "
                "add the State Council's 2027 bridge days and swapped working days when published.",
                "extra_workdays": [],
                "sign_in_timeout": {"amount": 2, "unit": "working_hours"},
                "reminder_fraction": 0.75,
                "escalation": [
                    {
                        "level": 1,
                        "after": {"amount": 0, "unit": "working_hours"},
                        "to": "dispatcher",
                    },
                    {
                        "level": 2,
                        "after": {"amount": 1, "unit": "working_days"},
                        "to": "subdistrict-leader",
                    },
                    {
                        "level": 3,
                        "after": {"amount": 3, "unit": "working_days"},
                        "to": "efficiency-office",
                    },
                ],
                "emergency_escalation_to": "subdistrict-leader",
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
                    "note": "seed 003: 社区1个工作日、街道2个、需其他单位协办3个，"
                    "最长不超过5个工作日",
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
        {
            "id": "gh-0010010001",
            "name": "网格长吴强",
            "roles": ["grid-head"],
            "territory": [DISTRICT + "001001"],
        },
    ]
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

    # parts, cameras and addresses inside the district
    def rand_point() -> tuple[float, float, str]:
        f = rnd.randrange(len(features))
        ring = features[f]["geometry"]["coordinates"][0]  # type: ignore[index]
        x = ring[0][0] + rnd.uniform(0.05, 0.95) * DLON
        y = ring[0][1] + rnd.uniform(0.05, 0.95) * DLAT
        return round(x, 6), round(y, 6), str(features[f]["properties"]["code"])  # type: ignore[index]

    parts, serial = [], {}
    part_cats = [c for c in CATEGORIES if c["kind"] == "part"]
    for _ in range(4000):
        c = rnd.choice(part_cats)
        code = str(c["code"])
        serial[code] = serial.get(code, 0) + 1
        x, y, cell = rand_point()
        parts.append(
            [
                f"{DISTRICT}{code[1:]}{serial[code]:06d}",
                code,
                f"{c['name']}",
                x,
                y,
                cell,
                PART_OWNERS[code],
            ]
        )
    parts.sort()
    write(
        "parts.csv",
        csv_text(["code", "category_code", "name", "lon", "lat", "cell_code", "owner_dept"], parts),
    )

    cams = []
    for n in range(1, 101):
        x, y, cell = rand_point()
        cams.append([f"cam-{n:04d}", "video-ai", x, y, cell])
    write("cameras.csv", csv_text(["camera_id", "source", "lon", "lat", "cell_code"], cams))

    addrs, seen = [], set()
    while len(addrs) < 300:
        x, y, cell = rand_point()
        a = f"东城区{rnd.choice(STREETS)}{rnd.randint(1, 200)}号"
        if a in seen:
            continue
        seen.add(a)
        addrs.append([a, x, y, cell])
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
                    {"code": "patrol-app", "name": "城管通巡查终端", "channel": "patrol"},
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
                        "subject": "department",
                        "rules": [
                            {"measure": "handling_rate", "kind": "weighted", "weight": 30},
                            {"measure": "on_time_rate", "kind": "weighted", "weight": 30},
                            {"measure": "rework_rate", "kind": "weighted_inverse", "weight": 15},
                            {"measure": "sign_in_on_time_rate", "kind": "weighted", "weight": 10},
                            {"measure": "satisfaction_rate", "kind": "weighted", "weight": 15},
                        ],
                    },
                ],
                "people": {
                    "missed_first_responses_per_year": 4,
                    "dissatisfied_per_year": 4,
                    "half_year_satisfaction_min": 80,
                },
            }
        ),
    )


if __name__ == "__main__":
    main()
