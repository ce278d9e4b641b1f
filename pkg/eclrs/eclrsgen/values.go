package eclrsgen

// place is a New York county with a typical town and ZIP prefix, weighted by
// population (thousands, 2020 census, rounded) so the default spread of county codes
// looks like the state's.
type place struct {
	county int64
	city   string
	zip3   string
	weight int
}

var places = [...]place{
	{1, "ALBANY", "122", 315}, {3, "WELLSVILLE", "148", 47}, {5, "BRONX", "104", 1472},
	{7, "BINGHAMTON", "139", 199}, {9, "OLEAN", "147", 77}, {11, "AUBURN", "130", 76},
	{13, "JAMESTOWN", "147", 127}, {15, "ELMIRA", "149", 84}, {17, "NORWICH", "138", 47},
	{19, "PLATTSBURGH", "129", 80}, {21, "HUDSON", "125", 61}, {23, "CORTLAND", "130", 46},
	{25, "WALTON", "138", 44}, {27, "POUGHKEEPSIE", "126", 295}, {29, "BUFFALO", "142", 954},
	{31, "LAKE PLACID", "129", 37}, {33, "MALONE", "129", 47}, {35, "GLOVERSVILLE", "120", 53},
	{37, "BATAVIA", "140", 58}, {39, "CATSKILL", "124", 48}, {41, "SPECULATOR", "121", 5},
	{43, "HERKIMER", "133", 60}, {45, "WATERTOWN", "136", 116}, {47, "BROOKLYN", "112", 2736},
	{49, "LOWVILLE", "133", 27}, {51, "GENESEO", "144", 62}, {53, "ONEIDA", "134", 68},
	{55, "ROCHESTER", "146", 759}, {57, "AMSTERDAM", "120", 49}, {59, "HEMPSTEAD", "115", 1395},
	{61, "NEW YORK", "100", 1694}, {63, "NIAGARA FALLS", "143", 212}, {65, "UTICA", "135", 232},
	{67, "SYRACUSE", "132", 476}, {69, "CANANDAIGUA", "144", 112}, {71, "NEWBURGH", "125", 401},
	{73, "ALBION", "144", 40}, {75, "OSWEGO", "131", 118}, {77, "ONEONTA", "138", 58},
	{79, "CARMEL", "105", 97}, {81, "JAMAICA", "114", 2405}, {83, "TROY", "121", 161},
	{85, "STATEN ISLAND", "103", 495}, {87, "NEW CITY", "109", 338}, {89, "POTSDAM", "136", 108},
	{91, "SARATOGA SPRINGS", "128", 235}, {93, "SCHENECTADY", "123", 158}, {95, "COBLESKILL", "120", 30},
	{97, "WATKINS GLEN", "148", 17}, {99, "SENECA FALLS", "131", 33}, {101, "CORNING", "148", 93},
	{103, "BRENTWOOD", "117", 1525}, {105, "MONTICELLO", "127", 78}, {107, "OWEGO", "138", 48},
	{109, "ITHACA", "148", 105}, {111, "KINGSTON", "124", 181}, {113, "GLENS FALLS", "128", 65},
	{115, "HUDSON FALLS", "128", 61}, {117, "NEWARK", "145", 91}, {119, "YONKERS", "107", 1004},
	{121, "WARSAW", "145", 40}, {123, "PENN YAN", "145", 25},
}

var lastNames = [...]string{
	"SMITH", "JOHNSON", "WILLIAMS", "BROWN", "JONES", "GARCIA", "MILLER", "DAVIS", "RODRIGUEZ", "MARTINEZ",
	"HERNANDEZ", "LOPEZ", "GONZALEZ", "WILSON", "ANDERSON", "THOMAS", "TAYLOR", "MOORE", "JACKSON", "MARTIN",
	"LEE", "PEREZ", "THOMPSON", "WHITE", "HARRIS", "SANCHEZ", "CLARK", "RAMIREZ", "LEWIS", "ROBINSON",
	"WALKER", "YOUNG", "ALLEN", "KING", "WRIGHT", "SCOTT", "TORRES", "NGUYEN", "HILL", "FLORES",
	"GREEN", "ADAMS", "NELSON", "BAKER", "HALL", "RIVERA", "CAMPBELL", "MITCHELL", "CARTER", "ROBERTS",
	"COHEN", "GOLDBERG", "OBRIEN", "MURPHY", "KELLY", "SULLIVAN", "ROSSI", "RUSSO", "ESPOSITO", "ROMANO",
	"CHEN", "WANG", "LI", "ZHANG", "LIU", "PATEL", "SHAH", "KHAN", "ALI", "HOSSAIN",
	"KOWALSKI", "NOWAK", "IVANOV", "FRIEDMAN", "SCHWARTZ", "DIAZ", "REYES", "CRUZ", "ORTIZ", "MORALES",
	"DE LA CRUZ", "VAN BUREN", "ST JOHN", "O'CONNOR", "MC DONALD", "SMITH-JONES",
}

var firstNames = [...]string{
	"JAMES", "MARY", "ROBERT", "PATRICIA", "JOHN", "JENNIFER", "MICHAEL", "LINDA", "DAVID", "ELIZABETH",
	"WILLIAM", "BARBARA", "RICHARD", "SUSAN", "JOSEPH", "JESSICA", "THOMAS", "SARAH", "CHARLES", "KAREN",
	"CHRISTOPHER", "LISA", "DANIEL", "NANCY", "MATTHEW", "BETTY", "ANTHONY", "MARGARET", "MARK", "SANDRA",
	"JOSE", "MARIA", "LUIS", "ANA", "CARLOS", "CARMEN", "JUAN", "ROSA", "MIGUEL", "SOFIA",
	"WEI", "MEI", "HAO", "YAN", "RAJ", "PRIYA", "MOHAMMED", "FATIMA", "AHMED", "AISHA",
	"NOAH", "EMMA", "LIAM", "OLIVIA", "ETHAN", "AVA", "MASON", "ISABELLA", "LUCAS", "MIA",
	"MARY ANN", "JEAN PAUL", "ANNE-MARIE", "JO",
}

var middleNames = [...]string{"A", "B", "C", "D", "E", "J", "L", "M", "R", "S", "T", "ANN", "LEE", "MARIE", "JAMES"}

var streets = [...]string{
	"MAIN ST", "BROADWAY", "CENTRAL AVE", "STATE ST", "PARK AVE", "MAPLE AVE", "OAK ST", "ELM ST", "WASHINGTON ST",
	"LAKE RD", "RIVER RD", "HIGHLAND AVE", "HILLSIDE AVE", "SUNRISE HWY", "NORTHERN BLVD", "JERICHO TPKE",
	"GRAND CONCOURSE", "ATLANTIC AVE", "FLATBUSH AVE", "QUEENS BLVD", "HYLAN BLVD", "DELAWARE AVE", "GENESEE ST",
	"ERIE BLVD", "MONROE AVE", "EAST AVE", "UNION ST", "CHURCH ST", "SCHOOL ST", "MILL RD", "RIDGE RD",
	"W 125TH ST", "E 14TH ST", "AMSTERDAM AVE", "Lexington Ave", "Pine St", "Cedar Ln", "Route 9", "County Rd 5",
}

var address2s = [...]string{"APT 1", "APT 2B", "APT 4F", "APT 12C", "UNIT 3", "FL 2", "# 5", "SUITE 100", "BSMT", "APT 1R"}

var areaCodes = [...]string{"212", "718", "917", "347", "646", "516", "631", "914", "845", "518", "315", "585", "716", "607"}

type lab struct{ pfi, clia, name string }

var labs = [...]lab{
	{"3130", "31D0652945", "ACME LABORATORIES INC"},
	{"1067", "33D0654341", "EMPIRE STATE REFERENCE LAB"},
	{"7821", "33D2156704", "HUDSON VALLEY CLINICAL LAB"},
	{"2245", "33D0987123", "NORTHEAST MOLECULAR DX"},
	{"5590", "33D1845520", "LAKESHORE HOSPITAL LAB"},
	{"8014", "31D2034411", "METRO PATHOLOGY SERVICES"},
	{"4402", "33D0712298", "ADIRONDACK REGIONAL LAB"},
	{"9133", "33D2201876", "FIVE BOROUGHS TESTING"},
}

var accessionPrefixes = [...]string{"IDR", "", "A", "LAB-", "", "NY", "CV", ""}

type facility struct{ name, address, city string }

var facilities = [...]facility{
	{"MAIN STREET URGENT CARE", "100 MAIN STREET", "HEMPSTEAD"},
	{"COUNTY HEALTH DEPT", "1 HEALTH PLAZA", "ALBANY"},
	{"ST ELSEWHERE HOSPITAL", "321 Main Street", "New Rochelle"},
	{"RIVERSIDE MEDICAL GROUP", "45 RIVERSIDE DR", "NEW YORK"},
	{"CAMPUS HEALTH SERVICES", "200 COLLEGE AVE", "ITHACA"},
	{"PHARMACY TEST SITE 12", "12 BROADWAY", "BROOKLYN"},
	{"STATE DRIVE-THRU SITE", "1 STADIUM WAY", "BUFFALO"},
	{"FAMILY PRACTICE ASSOC", "77 PARK AVE", "ROCHESTER"},
	{"NORTH COUNTRY HEALTH", "9 LAKE RD", "PLATTSBURGH"},
	{"HARBOR VIEW NURSING HOME", "500 HARBOR RD", "STATEN ISLAND"},
}

type test struct{ code, desc, loinc, loincDesc string }

var tests = [...]test{
	{"TH68-0", "COVID-19 Nasopharynx", "94309-2", "2019-nCoV RNA XXX NAA+probe-Imp"},
	{"49365", "2019 nCoV Real-Time RT-PCR", "94500-6", "SARS-CoV-2 RNA Resp Ql NAA+probe"},
	{"SARSCOV2", "SARS-CoV-2 RNA, QL RT-PCR", "94534-5", "SARS-CoV-2 RdRp Resp Ql NAA+probe"},
	{"AGRAPID", "SARS-CoV-2 Antigen, Rapid", "94558-4", "SARS-CoV-2 Ag Resp Ql IA.rapid"},
	{"95209", "SARS-CoV-2 Ag IA", "95209-3", "SARS-CoV+SARS-CoV-2 Ag Resp Ql IA.rapid"},
	{"COVPCRS", "COVID-19 PCR, Saliva", "94845-5", "SARS-CoV-2 RNA Saliva Ql NAA+probe"},
}

type result struct{ text, short, snomed, snomedDesc string }

var results = [...]result{
	{"Positive", "Positive", "10828004", "Positive (qualifier value)"},
	{"Detected", "Detected", "260373001", "Detected (qualifier value)"},
	{"SARS-CoV-2 RNA DETECTED", "DETECTED", "260373001", "Detected (qualifier value)"},
	{"Positive for 2019-nCoV", "Positive for 2019-nCoV", "10828004", "Positive for 2019-nCoV"},
}

var specimens = [...]string{"NP swab", "Anterior nares swab", "Saliva", "Oropharyngeal swab", "NASOPHARYNX", "Nasal swab"}

var employers = [...]string{
	"UPSTATE LOGISTICS INC", "MAPLE LEAF DINER", "RIVERSIDE NURSING HOME", "EMPIRE GROCERS", "BLUE LINE BUS CO",
	"TOWN OF GREENFIELD", "STATEWIDE INSURANCE CO", "SELF EMPLOYED", "HUDSON RIVER HOSPITAL", "CITY DEPT OF SANITATION",
}

var jobTitles = [...]string{"REGISTERED NURSE", "TEACHER", "CASHIER", "BUS DRIVER", "ENGINEER", "COOK", "CLERK", "HOME HEALTH AIDE", "SECURITY OFFICER", "MANAGER"}

var schools = [...]struct{ name, district string }{
	{"PS 123", "NYC DEPT OF EDUCATION DISTRICT 5"},
	{"LINCOLN HIGH SCHOOL", "YONKERS CITY SCHOOL DISTRICT"},
	{"WASHINGTON ELEMENTARY SCHOOL", "CENTRAL SCHOOL DISTRICT"},
	{"LAKESIDE MIDDLE SCHOOL", "LAKESIDE UNION FREE SCHOOL DISTRICT"},
	{"STATE UNIVERSITY COLLEGE", "N/A"},
}

var schoolJobClasses = [...]string{"STUDENT", "STUDENT", "STUDENT", "TEACHER", "STAFF"}

var yesNo = [...]string{"Y", "N", "N", "N", "U"}
